// Where the package is installed, so the embedded example and proto/ are found from any cwd.
// This file compiles to dist/src/package-root.js: the root is two levels up.
import { fileURLToPath } from 'node:url';

export const kPackageRoot = fileURLToPath(new URL('../../', import.meta.url));
