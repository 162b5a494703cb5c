// Starts @firestore-emulator/server on a chosen host and port.
// The package has no CLI and its start() binds 0.0.0.0; the local stack stays on loopback,
// so this binds the package's own gRPC server to the address it is given.
"use strict";

const { FirestoreServer } = require("@firestore-emulator/server");
const { ServerCredentials } = require("@grpc/grpc-js");

function log(severity, message, extra) {
  process.stdout.write(`${JSON.stringify({ severity, message, ...extra })}\n`);
}

const [host, portText] = process.argv.slice(2);
const port = Number(portText);
if (!host || !Number.isInteger(port) || port <= 0 || port > 65535) {
  log("ERROR", "usage: node firestore_emulator.cjs HOST PORT");
  process.exit(2);
}

const emulator = new FirestoreServer();
emulator.server.bindAsync(`${host}:${port}`, ServerCredentials.createInsecure(), (err) => {
  if (err) {
    log("ERROR", `Firestore emulator cannot listen on ${host}:${port}: ${err.message}`);
    process.exit(1);
  }
  log("INFO", "Firestore emulator listening", { host, port });
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    emulator.stop();
    process.exit(0);
  });
}
