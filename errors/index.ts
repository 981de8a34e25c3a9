export { errorGuard, isSeawallError, SeawallError } from './seawall-error.js';
