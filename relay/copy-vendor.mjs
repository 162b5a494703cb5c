// Copies the Firebase JS SDK's browser ES modules from node_modules/ (npm ci, pinned by
// package-lock.json) into static/vendor/firebase/, so the chat page loads them from the relay
// and never from a CDN. Why these files and this rewrite: static/README.md.
//
//   node copy-vendor.mjs          write static/vendor/firebase/
//   node copy-vendor.mjs --check  exit 1 if the committed copies differ from what it would write
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkgDir = join(here, "node_modules", "firebase");
const outDir = join(here, "static", "vendor", "firebase");
// The page needs Auth only; app is what auth imports.
const FILES = ["firebase-app.js", "firebase-auth.js"];

const { version } = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
// The CDN builds import each other by absolute gstatic URL; offline that URL cannot load.
const cdnImport = /(\bfrom\s*|\bimport\s*\(?\s*)"https:\/\/www\.gstatic\.com\/firebasejs\/([^/"]+)\/([a-z-]+\.js)"/g;
// Any import specifier left pointing off this host after the rewrite is a failure.
const remoteImport = /(\bfrom\s*|\bimport\s*\(?\s*)["']https?:/;

function vendored(name) {
  let text = readFileSync(join(pkgDir, name), "utf8");
  text = text.replace(cdnImport, (_, keyword, cdnVersion, target) => {
    if (cdnVersion !== version) throw new Error(`${name} imports ${target} of ${cdnVersion}, package is ${version}`);
    if (!FILES.includes(target)) throw new Error(`${name} imports ${target}, which is not vendored`);
    return `${keyword}"./${target}"`;
  });
  if (remoteImport.test(text)) throw new Error(`${name} still imports from a remote URL`);
  // Source maps are not shipped (the rewrite shifts columns of the minified line anyway).
  text = text.replace(/\n\/\/# sourceMappingURL=\S+\s*$/, "\n");
  return `// firebase@${version} ${name}, vendored by relay/copy-vendor.mjs (CDN import rewritten to ./)\n${text}`;
}

const check = process.argv.includes("--check");
mkdirSync(outDir, { recursive: true });
let stale = [];
for (const name of FILES) {
  const text = vendored(name);
  const target = join(outDir, name);
  const current = existsSync(target) ? readFileSync(target, "utf8") : null;
  if (current === text) continue;
  if (check) stale.push(name);
  else writeFileSync(target, text);
}
if (stale.length) {
  console.error(`relay/static/vendor/firebase is stale (${stale.join(", ")}): run make install`);
  process.exit(1);
}
