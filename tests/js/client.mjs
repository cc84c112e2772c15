// One Matrix device driven by Element's SDK (matrix-js-sdk with its Rust crypto), for the
// real-client tests. Driven from pytest (tests/harness/jsclient.py): one JSON command per
// line on stdin, one JSON answer per line on stdout ({"id", "ok", ...} or {"id", "error"}).
// Logs go to stderr only.
//
// Commands:
//   {"cmd": "start", "baseUrl", "userId", "accessToken", "deviceId"}  sync with encryption
//   {"cmd": "join", "roomId"}
//   {"cmd": "send", "roomId", "body"}                                 -> {"eventId"}
//   {"cmd": "wait_text", "roomId", "sender", "body", "timeoutMs"}     -> {"eventId"}
//   {"cmd": "stop"}

// Node 20 has no Promise.withResolvers (Node 22 has); matrix-js-sdk uses it.
if (typeof Promise.withResolvers !== "function") {
    Promise.withResolvers = function withResolvers() {
        let resolve;
        let reject;
        const promise = new Promise((res, rej) => {
            resolve = res;
            reject = rej;
        });
        return { promise, resolve, reject };
    };
}
// Some of the SDK's stores look for IndexedDB even with the in-memory crypto store.
await import("fake-indexeddb/auto");

const sdk = await import("matrix-js-sdk");
const { logger } = await import("matrix-js-sdk/lib/logger.js");
import readline from "node:readline";

// The SDK logs to stdout through loglevel: keep stdout for the protocol.
for (const method of ["trace", "debug", "info", "log", "warn", "error"]) {
    console[method] = (...args) => process.stderr.write(args.map(String).join(" ") + "\n");
}
logger.setLevel?.("warn");

let client = null;
const texts = []; // {roomId, eventId, sender, body}
const waiters = new Set();

function record(event, room) {
    if (event.isDecryptionFailure() || event.getType() !== "m.room.message") return;
    const content = event.getContent();
    if (typeof content.body !== "string") return;
    texts.push({ roomId: room.roomId, eventId: event.getId(), sender: event.getSender(), body: content.body });
    for (const waiter of waiters) waiter();
}

function findText(roomId, sender, body) {
    return texts.find((t) => t.roomId === roomId && t.sender === sender && t.body.includes(body));
}

async function start({ baseUrl, userId, accessToken, deviceId }) {
    client = sdk.createClient({ baseUrl, userId, accessToken, deviceId });
    await client.initRustCrypto({ useIndexedDB: false });
    client.on(sdk.RoomEvent.Timeline, (event, room) => {
        if (event.isEncrypted()) {
            // Decryption is asynchronous; the decrypted event is recorded when it is ready.
            event.once(sdk.MatrixEventEvent.Decrypted, () => record(event, room));
            if (!event.isBeingDecrypted() && !event.isDecryptionFailure() && event.getClearContent()) {
                record(event, room);
            }
        } else {
            record(event, room);
        }
    });
    const ready = new Promise((resolve) => {
        client.on(sdk.ClientEvent.Sync, (state) => {
            if (state === "PREPARED" || state === "SYNCING") resolve();
        });
    });
    await client.startClient({ initialSyncLimit: 20 });
    await ready;
    return {};
}

async function join({ roomId }) {
    await client.joinRoom(roomId);
    return {};
}

async function send({ roomId, body }) {
    const room = client.getRoom(roomId);
    if (!room) throw new Error(`unknown room ${roomId}`);
    // Test devices are not verified: send to them all (as the nio clients of the suite do).
    client.getCrypto().globalBlacklistUnverifiedDevices = false;
    const { event_id: eventId } = await client.sendEvent(roomId, "m.room.message", { msgtype: "m.text", body });
    return { eventId };
}

function waitText({ roomId, sender, body, timeoutMs = 30000 }) {
    return new Promise((resolve, reject) => {
        const check = () => {
            const found = findText(roomId, sender, body);
            if (found) {
                waiters.delete(check);
                clearTimeout(timer);
                resolve({ eventId: found.eventId });
            }
        };
        const timer = setTimeout(() => {
            waiters.delete(check);
            const seen = texts.filter((t) => t.roomId === roomId).map((t) => `${t.sender}: ${t.body}`);
            reject(new Error(`no message from ${sender} containing ${JSON.stringify(body)}; seen: ${JSON.stringify(seen)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
    });
}

const commands = { start, join, send, wait_text: waitText };

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
    if (!line.trim()) continue;
    const request = JSON.parse(line);
    if (request.cmd === "stop") {
        client?.stopClient();
        process.stdout.write(JSON.stringify({ id: request.id, ok: true }) + "\n");
        break;
    }
    const handler = commands[request.cmd];
    // Commands run concurrently: a wait does not block a send.
    (async () => {
        try {
            if (!handler) throw new Error(`unknown command ${request.cmd}`);
            const result = await handler(request);
            process.stdout.write(JSON.stringify({ id: request.id, ok: true, ...result }) + "\n");
        } catch (error) {
            process.stdout.write(JSON.stringify({ id: request.id, error: String(error?.stack || error) }) + "\n");
        }
    })();
}
process.exit(0);
