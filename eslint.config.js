// ESLint flat config (ESLint 9). Deliberately small: the type-aware promise
// rules, import cycles and the layering of DESIGN.md "Conventions":
//   bin → api | worker → domain, db, queue, runtime; domain imports nothing.
// The web dashboard (web/src) is checked against its own tsconfig (DOM, no
// Node) and reaches into src/ only for the generated code.
// Run with `npm run lint`.
import { defineConfig } from "eslint/config";
import tseslint from "typescript-eslint";
import { importX } from "eslint-plugin-import-x";
import { createTypeScriptImportResolver } from "eslint-import-resolver-typescript";

const root = import.meta.dirname;
const tsconfig = `${root}/tsconfig.test.json`;
const webTsconfig = `${root}/web/tsconfig.json`;

/** Layers that sit below api/worker and must never reach up into them. */
const lowerLayers = ["src/db", "src/queue", "src/runtime", "src/model-server", "src/onnx", "src/telemetry"];
const upperLayers = ["src/api", "src/worker", "src/app", "src/bin", "src/cli"];

const sharedRules = {
  "@typescript-eslint/no-floating-promises": "error",
  "@typescript-eslint/no-misused-promises": "error",
  "import-x/no-cycle": ["error", { ignoreExternal: true }],
  "import-x/no-self-import": "error",
};

export default defineConfig(
  {
    ignores: ["dist/**", "node_modules/**", "src/gen/**", "test-artifacts/**"],
  },
  {
    files: ["src/**/*.ts", "test/**/*.ts", "bench/**/*.ts", "vitest.config.ts", "vitest.faults.config.ts", "web/vite.config.ts"],
    linterOptions: { reportUnusedDisableDirectives: "error" },
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: {
        project: tsconfig,
        tsconfigRootDir: root,
      },
    },
    plugins: {
      "@typescript-eslint": tseslint.plugin,
      "import-x": importX,
    },
    settings: {
      // Lets no-cycle parse the ".ts" files it follows (import-x only reads
      // files with these extensions, with this parser).
      "import-x/extensions": [".ts"],
      "import-x/parsers": { "@typescript-eslint/parser": [".ts"] },
      "import-x/external-module-folders": ["node_modules", "node_modules/@types"],
      // Resolves NodeNext ".js" specifiers to their ".ts" sources, which the
      // cycle and layering rules need (unresolved imports are skipped by them).
      "import-x/resolver-next": [createTypeScriptImportResolver({ project: tsconfig })],
    },
    rules: {
      ...sharedRules,
      // Generators that only throw (unimplemented stubs) say so with a directive.
      "require-yield": "error",
      "import-x/no-restricted-paths": [
        "error",
        {
          basePath: root,
          zones: [
            {
              target: "src/domain",
              from: "src",
              except: ["./domain"],
              message: "src/domain imports nothing of the project outside src/domain.",
            },
            {
              target: lowerLayers,
              from: upperLayers,
              message: "db, queue, runtime, model-server, onnx and telemetry never import api, worker, app, bin or cli.",
            },
            {
              target: "src/deployments",
              from: upperLayers,
              message: "src/deployments (the service layer) sits below api and worker: it never imports them.",
            },
            {
              target: lowerLayers,
              from: "src/deployments",
              message: "db, queue and runtime sit below the service layer (src/deployments).",
            },
            {
              target: "src/api",
              from: "src/worker",
              message: "api and worker are siblings: share code through a lower layer.",
            },
            {
              target: "src/worker",
              from: "src/api",
              message: "api and worker are siblings: share code through a lower layer.",
            },
            {
              target: ["src/!(bin)/**", "src/*.ts", "test/**", "bench/**", "vitest.config.ts"],
              from: "src/bin",
              message: "Nothing outside src/bin imports src/bin.",
            },
            {
              target: ["src", "test", "bench"],
              from: "web",
              message: "The server and its tests never import the web dashboard's code.",
            },
          ],
        },
      ],
    },
  },
  {
    files: ["web/src/**/*.ts", "web/src/**/*.tsx"],
    linterOptions: { reportUnusedDisableDirectives: "error" },
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { project: webTsconfig, tsconfigRootDir: root },
    },
    plugins: {
      "@typescript-eslint": tseslint.plugin,
      "import-x": importX,
    },
    settings: {
      "import-x/extensions": [".ts", ".tsx"],
      "import-x/parsers": { "@typescript-eslint/parser": [".ts", ".tsx"] },
      "import-x/external-module-folders": ["node_modules", "node_modules/@types"],
      "import-x/resolver-next": [createTypeScriptImportResolver({ project: webTsconfig })],
    },
    rules: {
      ...sharedRules,
      "import-x/no-restricted-paths": [
        "error",
        {
          basePath: root,
          zones: [
            {
              target: "web",
              from: "src",
              except: ["./gen"],
              message: "The web dashboard runs in the browser: of src/ it imports only the generated code (src/gen).",
            },
          ],
        },
      ],
    },
  },
);
