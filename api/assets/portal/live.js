// Live updates of My applications: a small client of the
// graphql-transport-ws protocol over a same-origin WebSocket at
// /graphql/ws (authorised by the session cookie; the CSRF token goes in
// connection_init), with reconnection and backoff, and polling every 10 s
// whenever the socket is not up.
"use strict";

(function () {
  const SUBSCRIPTION =
    "subscription { myApplicationChanged { id status submittedAt appointment { meetingPoint location startsAt purpose } } }";
  const POLL_MS = 10000;
  const BACKOFF_FIRST_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  const ACK_TIMEOUT_MS = 5000;

  // One live feed: `onChange(application)` for every `next`, `onPoll()`
  // every 10 s while the socket is down (and once after each reconnect,
  // for what changed meanwhile).
  class LiveFeed {
    constructor(options) {
      this.onChange = options.onChange;
      this.onPoll = options.onPoll;
      this.csrfToken = options.csrfToken;
      this.socket = null;
      this.acked = false;
      this.stopped = false;
      this.nextId = 1;
      this.attempt = 0;
      this.retryTimer = null;
      this.pollTimer = null;
      this.ackTimer = null;
    }

    // "socket" when the subscription is live, "polling" otherwise.
    get mode() {
      return this.acked ? "socket" : "polling";
    }

    start() {
      this.stopped = false;
      this.startPolling();
      this.connect();
    }

    stop() {
      this.stopped = true;
      this.stopPolling();
      clearTimeout(this.retryTimer);
      clearTimeout(this.ackTimer);
      if (this.socket) {
        const socket = this.socket;
        this.socket = null;
        try {
          socket.close(1000, "Normal Closure");
        } catch (_) {
          // Already closed.
        }
      }
      this.acked = false;
    }

    startPolling() {
      if (this.pollTimer === null && !this.stopped) {
        this.pollTimer = setInterval(() => this.onPoll(), POLL_MS);
      }
      document.documentElement.dataset.live = "polling";
    }

    stopPolling() {
      if (this.pollTimer !== null) {
        clearInterval(this.pollTimer);
        this.pollTimer = null;
      }
    }

    connect() {
      if (this.stopped || typeof WebSocket === "undefined") {
        return;
      }
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      let socket;
      try {
        socket = new WebSocket(scheme + "//" + location.host + "/graphql/ws", "graphql-transport-ws");
      } catch (_) {
        this.scheduleReconnect();
        return;
      }
      this.socket = socket;
      this.acked = false;
      socket.addEventListener("open", () => {
        this.send({ type: "connection_init", payload: { csrfToken: this.csrfToken() || "" } });
        this.ackTimer = setTimeout(() => socket.close(4408, "Connection initialisation timeout"), ACK_TIMEOUT_MS);
      });
      socket.addEventListener("message", (event) => this.receive(event.data));
      socket.addEventListener("close", () => {
        if (this.socket !== socket) {
          return;
        }
        clearTimeout(this.ackTimer);
        this.socket = null;
        this.acked = false;
        this.startPolling();
        this.scheduleReconnect();
      });
      // An error is always followed by close, which does the rest.
      socket.addEventListener("error", () => {});
    }

    scheduleReconnect() {
      if (this.stopped) {
        return;
      }
      const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * Math.pow(2, this.attempt));
      this.attempt += 1;
      const wait = ceiling / 2 + Math.random() * (ceiling / 2);
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.connect(), wait);
    }

    send(message) {
      if (this.socket && this.socket.readyState === WebSocket.OPEN) {
        this.socket.send(JSON.stringify(message));
      }
    }

    receive(data) {
      let message;
      try {
        message = JSON.parse(data);
      } catch (_) {
        this.socket.close(4400, "Invalid message");
        return;
      }
      switch (message.type) {
        case "connection_ack":
          clearTimeout(this.ackTimer);
          this.acked = true;
          this.attempt = 0;
          this.stopPolling();
          document.documentElement.dataset.live = "socket";
          this.subscriptionId = String(this.nextId++);
          this.send({ id: this.subscriptionId, type: "subscribe", payload: { query: SUBSCRIPTION } });
          // What changed while the socket was down.
          this.onPoll();
          break;
        case "ping":
          this.send({ type: "pong" });
          break;
        case "pong":
          break;
        case "next":
          if (message.id === this.subscriptionId && message.payload && message.payload.data) {
            const changed = message.payload.data.myApplicationChanged;
            if (changed) {
              this.onChange(changed);
            }
          }
          break;
        case "error":
        case "complete":
          // The server ended the subscription (e.g. the session ended):
          // keep the page current by polling.
          if (message.id === this.subscriptionId) {
            this.subscriptionId = null;
            this.acked = false;
            this.startPolling();
          }
          break;
        default:
          break;
      }
    }
  }

  window.PortalLive = { LiveFeed };
})();
