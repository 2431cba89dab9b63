// typescript-eslint over Baton's TypeScript, with type information: the
// promise rules catch a promise nobody awaits or handles, and a promise
// passed where a plain callback is expected.
import tseslint from 'typescript-eslint';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'tools/**', 'public/**', '**/*.js', '**/*.mjs'] },
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.base],
    languageOptions: {
      parserOptions: { project: './tsconfig.json', tsconfigRootDir: root },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
    },
  },
);
