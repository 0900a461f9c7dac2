// Runs a Ruby program in CRuby compiled to WebAssembly (npm @ruby/<ver>-wasm-wasi)
// under node's WASI. Used by the version matrix to get real heap dumps from
// Rubies that Debian does not ship (docs/ruby-versions.md).
//
//   ulimit -s unlimited
//   node --single-threaded --liftoff --no-wasm-tier-up --stack-size=50000 \
//     --no-incremental-marking run-ruby.mjs MODULES_DIR VERSION WORK_DIR SCRIPT
//
// Without those flags node 20 crashes on these modules: its optimising tier
// and the deep stack CRuby's GC needs, and V8's incremental marking, which
// dies in ProcessEphemerons once the guest has made a few thousand objects.
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
  // `load` rather than eval of the source: __FILE__ and allocation sites
  // then name the program's real path.
  const guestPath = JSON.stringify("/work/" + script);
  vm.eval(`Dir.chdir("/work"); $0 = ${guestPath}; load ${guestPath}`);
} catch (err) {
  console.error(String(err && err.message ? err.message : err));
  process.exit(1);
}
