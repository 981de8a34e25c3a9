export { labelTextProblem, MAX_LABEL_TEXT_LENGTH } from './label-text.js';
export { errorGuard, isSeawallError, SeawallError } from './seawall-error.js';
export { thrownText } from './thrown-text.js';
