import { defineConfig } from "vite";

// The app loads ui/dist through Tauri's asset protocol; relative paths keep it portable.
export default defineConfig({
  base: "./",
  clearScreen: false,
  build: { outDir: "dist", emptyOutDir: true, target: "es2021" },
  server: { host: "127.0.0.1", port: 5173, strictPort: true },
});
