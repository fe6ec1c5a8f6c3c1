import { defineConfig } from "vitest/config";

// The web view of src-tauri: built to ui/dist, which tauri.conf.json embeds.
export default defineConfig({
  clearScreen: false,
  build: { outDir: "dist", emptyOutDir: true, target: "safari15", sourcemap: false },
  test: { environment: "jsdom", globals: true, include: ["src/**/*.test.ts"] },
});
