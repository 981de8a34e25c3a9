/*
 * The L2 guest: runs at EL1 with the MMU off (so VA = IPA), asks the VMM for scenarios through a
 * command port, performs each access, and reports every exception it takes (vector, ESR_EL1,
 * FAR_EL1, ELR_EL1) back through the same port. It is position independent: the VMM copies the
 * bytes between guest_start and guest_end to the start of guest RAM.
 *
 * Port (VMM-served MMIO at LANE_PORT, see lane.h), all 64-bit accesses with a valid syndrome:
 *   +0  read: next scenario (0 = stop)    +8  read: its address
 *   +16 write: scenario finished          +24 write: vCPU stopping
 *   +32 vector index, +40 ESR, +48 FAR, +56 ELR (the ELR write completes a report)
 */
#include "lane.h"

	.section .rodata.guest, "a"
	.balign 2048
	.global guest_start
	.global guest_end
guest_start:
	adr	x9, vectors
	msr	vbar_el1, x9
	isb
	mov	x20, #LANE_PORT
	movz	x21, #0x5eaa
	movk	x21, #0x11, lsl #16	/* the value stores write: 0x115eaa */

next:
	ldr	x0, [x20, #0]
	ldr	x1, [x20, #8]
	cbz	x0, stop
	cmp	x0, #SCN_LDR
	b.eq	do_ldr
	cmp	x0, #SCN_STR
	b.eq	do_str
	cmp	x0, #SCN_LDP
	b.eq	do_ldp
	cmp	x0, #SCN_STP
	b.eq	do_stp
	cmp	x0, #SCN_LDR_POST
	b.eq	do_ldr_post
	b	done

do_ldr:	ldr	x2, [x1]		/* syndrome valid: KVM_EXIT_MMIO, or SIGBUS on poison */
	b	done
do_str:	str	x21, [x1]
	b	done
do_ldp:	ldp	x2, x3, [x1]		/* no syndrome: KVM_EXIT_ARM_NISV */
	b	done
do_stp:	stp	x21, x21, [x1]
	b	done
do_ldr_post:
	ldr	x2, [x1], #8		/* writeback: no syndrome either */
	b	done

done:	str	x0, [x20, #16]
	b	next

stop:	str	xzr, [x20, #24]
	b	stop

/* Every entry reports its index and returns past the faulting instruction, so the scenario ends
 * with "finished" whatever it took. */
	.balign 2048
vectors:
	.irp	idx, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	.balign	128
	mov	x9, #\idx
	b	report
	.endr

report:
	mrs	x10, esr_el1
	mrs	x11, far_el1
	mrs	x12, elr_el1
	str	x9, [x20, #32]
	str	x10, [x20, #40]
	str	x11, [x20, #48]
	str	x12, [x20, #56]
	add	x12, x12, #4
	msr	elr_el1, x12
	eret
guest_end:
