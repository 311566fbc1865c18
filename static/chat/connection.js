// The session's websocket (PROTOCOL §3): connects, reconnects after any drop with backoff and jitter (at once when
// the network comes back), pings so that a silent dead socket is noticed, and says how the connection is doing.
// What to send after (re)connecting — `resume` from the last seq seen — is the caller's (`onOpen`).

const PING_EVERY_MS = 10000;
const DEAD_AFTER_MS = 25000; // no frame, not even a pong, for this long: the connection is gone without saying so
const MAX_BACKOFF_MS = 10000;

export class Connection {
  /**
   * @param url the websocket URL
   * @param onOpen called on every (re)connection, before any frame is received
   * @param onFrame called with each frame (a parsed JSON object)
   * @param onStatus called with a text for the banner ("" when connected) whenever the connection changes
   */
  constructor({ url, onOpen, onFrame, onStatus }) {
    Object.assign(this, { url, onOpen, onFrame, onStatus });
    this.socket = null;
    this.attempt = 0;
    this.timer = null;
    this.lastFrameAt = Date.now();
    this.closedForGood = false;
  }

  start() {
    window.addEventListener("offline", () => {
      this.onStatus("You are offline — waiting for the network…");
      if (this.socket) this.socket.close();
    });
    window.addEventListener("online", () => {
      if (!this.isOpen()) this.reconnectNow();
    });
    setInterval(() => this.ping(), PING_EVERY_MS);
    this.connect();
  }

  isOpen() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  /** Send a frame; false when the socket is not open (the caller keeps what must be sent again). */
  send(frame) {
    if (!this.isOpen()) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  connect() {
    if (this.closedForGood) return;
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.attempt = 0;
      this.lastFrameAt = Date.now();
      this.onStatus("");
      this.onOpen();
    });
    socket.addEventListener("message", (message) => {
      this.lastFrameAt = Date.now();
      this.onFrame(JSON.parse(message.data));
    });
    socket.addEventListener("close", (event) => {
      if (socket !== this.socket) return; // an older socket we replaced
      if (event.code === 4401 || event.code === 4404) {
        this.closedForGood = true;
        this.onStatus(event.code === 4401 ? "You are logged out. Reload the page to log in again." : "This chat does not exist.");
        return;
      }
      const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
      this.attempt += 1;
      this.onStatus("Connection lost — reconnecting…");
      this.timer = setTimeout(() => this.connect(), delay);
    });
  }

  reconnectNow() {
    clearTimeout(this.timer);
    this.attempt = 0;
    const old = this.socket;
    this.socket = null;
    if (old) old.close();
    this.connect();
  }

  ping() {
    if (!this.isOpen()) return;
    if (Date.now() - this.lastFrameAt > DEAD_AFTER_MS) {
      this.socket.close();
      return;
    }
    this.send({ type: "ping" });
  }
}
