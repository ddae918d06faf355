// Starts the in-memory Firestore emulator (@firestore-emulator/server) on
// 127.0.0.1:<port> and prints "ready <port>" once it accepts connections.
// Usage: node tests/emulator/start.js <port>
"use strict";

const { FirestoreServer } = require("@firestore-emulator/server");
// Use the grpc-js copy the emulator itself loads, so credentials match.
const { ServerCredentials } = require(
  require.resolve("@grpc/grpc-js", {
    paths: [require.resolve("@firestore-emulator/server")],
  }),
);

const port = Number.parseInt(process.argv[2] ?? "", 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error("usage: node start.js <port>");
  process.exit(2);
}

const emulator = new FirestoreServer();

// FirestoreServer.start(port) binds 0.0.0.0; bind its gRPC server to loopback
// only when the (pinned) internals allow it, otherwise fall back to start().
function bindLoopback() {
  const grpcServer = emulator.server;
  if (!grpcServer || typeof grpcServer.bindAsync !== "function") {
    return emulator.start(port);
  }
  return new Promise((resolve, reject) => {
    grpcServer.bindAsync(
      `127.0.0.1:${port}`,
      ServerCredentials.createInsecure(),
      (err) => (err ? reject(err) : resolve()),
    );
  });
}

function shutdown() {
  emulator.stop();
  process.exit(0);
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

bindLoopback().then(
  () => console.log(`ready ${port}`),
  (err) => {
    console.error(`failed to start Firestore emulator on port ${port}: ${err}`);
    process.exit(1);
  },
);
