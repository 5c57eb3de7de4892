// ESLint flat config of the Flowlet frontend: JavaScript with @eslint/js's recommended rules,
// TypeScript (.ts/.tsx) with typescript-eslint's recommended rules that need no type
// information (no tsconfig, no build step: Node 20 runs only the .js files).
import js from "@eslint/js";
import { defineConfig } from "eslint/config";
import globals from "globals";
import tseslint from "typescript-eslint";

export default defineConfig([
  { ignores: ["node_modules/**"] },
  {
    files: ["**/*.{js,mjs,cjs,jsx,ts,mts,cts,tsx}"],
    extends: [js.configs.recommended],
    languageOptions: {
      ecmaVersion: 2023,
      sourceType: "module",
      globals: { ...globals.browser, ...globals.node },
    },
    rules: {
      "no-unused-vars": "error",
      eqeqeq: "error",
    },
  },
  {
    files: ["**/*.{ts,mts,cts,tsx}"],
    extends: [tseslint.configs.recommended],
  },
]);
