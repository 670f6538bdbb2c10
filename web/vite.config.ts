// The web dashboard: `npm run build` writes it to dist/web, which the API's
// HTTP port serves at / (src/api/static-assets.ts). `npm run dev:web` serves
// it with hot reload and sends the RPCs to the API at MODELDEPLOY_URL.
import { defineConfig } from "vite";

const api = process.env["MODELDEPLOY_URL"] ?? "http://127.0.0.1:8080";

export default defineConfig({
  root: import.meta.dirname,
  base: "/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "../dist/web",
    emptyOutDir: true,
    target: "es2022",
    // The API serves these files; nothing to inline or map for it.
    assetsInlineLimit: 0,
    sourcemap: false,
    reportCompressedSize: false,
    // Browsers that run this page all support modulepreload.
    modulePreload: { polyfill: false },
  },
  server: {
    proxy: { "^/modeldeploy\\.v1\\.": { target: api, changeOrigin: true } },
  },
});
