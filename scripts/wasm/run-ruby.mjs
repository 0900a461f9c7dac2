// Runs a Ruby program in CRuby compiled to WebAssembly (npm @ruby/<ver>-wasm-wasi)
// under node's WASI. Used by the version matrix to get real heap dumps from
// Rubies that Debian does not ship (docs/ruby-versions.md).
//
//   node --single-threaded --liftoff --no-wasm-tier-up --stack-size=50000 \
//     run-ruby.mjs MODULES_DIR VERSION WORK_DIR SCRIPT
//
// WORK_DIR is preopened as /work inside the guest; SCRIPT is a path relative
// to it. The program's exit status becomes node's.
import fs from "node:fs/promises";
import path from "node:path";
import { createRequire } from "node:module";
import { WASI } from "node:wasi";

const [modulesDir, version, workDir, script] = process.argv.slice(2);
if (!script) {
  console.error("usage: run-ruby.mjs MODULES_DIR VERSION WORK_DIR SCRIPT");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(modulesDir), "package.json"));
const { RubyVM } = require("@ruby/wasm-wasi");
const wasmPath = path.join(
  path.resolve(modulesDir),
  "node_modules/@ruby",
  `${version}-wasm-wasi`,
  "dist/ruby+stdlib.wasm",
);
const module = await WebAssembly.compile(await fs.readFile(wasmPath));
const wasi = new WASI({
  version: "preview1",
  args: ["ruby", `/work/${script}`],
  env: { RUBYOPT: "-EUTF-8" },
  preopens: { "/work": path.resolve(workDir) },
  returnOnExit: true,
});
const { vm } = await RubyVM.instantiateModule({ module, wasip1: wasi, args: ["ruby.wasm", "-e_=0"] });
try {
  const source = await fs.readFile(path.join(workDir, script), "utf8");
  vm.eval(`Dir.chdir("/work"); $0 = ${JSON.stringify("/work/" + script)}`);
  vm.eval(source);
} catch (err) {
  console.error(String(err && err.message ? err.message : err));
  process.exit(1);
}
