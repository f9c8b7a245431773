// Support console: the agent's side of the end-to-end-encrypted chat
// (docs/support-chat-crypto.md). Keys are made, opened and used here with libsodium; the
// server sees public keys, sealed keys, ciphertext and metadata only.
// Loaded as a file (the page's CSP forbids inline script). Everything that comes from the
// server or from a message goes into the page as text (textContent), never as HTML.
(function () {
  "use strict";

  const USER_ID = document.querySelector('meta[name="user-id"]').content;
  const CSRF = document.querySelector('meta[name="csrf-token"]').content;
  // May create the team key and grant it (support.supervise); the server checks it again.
  const SUPERVISOR = document.querySelector('meta[name="supervisor"]').content === "yes";
  const GRANT_POLL_MS = 2000;
  const HOLDERS_POLL_MS = 5000;
  const TYPING_SHOWN_MS = 4000;
  const TYPING_SENT_EVERY_MS = 2500;
  const MAX_PLAINTEXT_BYTES = 16 * 1024 - 16; // the server's ciphertext limit less the MAC
  const KEY_DB = "nameless-console";
  const KEY_STORE = "device-keys";

  const $ = (id) => document.getElementById(id);

  const state = {
    device: null, // {deviceId, publicKey, privateKey}: this browser's key pair for this agent
    deviceKeyId: "",
    team: new Map(), // team key id -> {publicKey, privateKey}, in memory only
    conversations: new Map(), // conversation id -> local state (see upsert)
    selected: null,
    socket: null,
    lastTypingSent: 0,
    agents: [], // other support agents, for transfers: {user_id, display_name, online, open, capacity}
    activeTeamKey: null, // supervisors: the active team key {key_id, public_key, active}
    holders: [], // supervisors: who may hold the team key, with devices and their grants
    holdersShown: "", // what the panel last drew, so a poll that changes nothing redraws nothing
    confirming: "", // the device key id whose grant waits for the supervisor's confirmation
    holdersTimer: 0,
    created: false, // this console created the team key
    unsealedTeam: null, // a team key this console registered but whose first grant is not stored yet
  };

  // --- small helpers ------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function setStatus(name, text) {
    const status = $("status");
    status.dataset.state = name;
    status.textContent = text;
  }

  function notice(text) {
    $("notice").textContent = text || "";
  }

  function time(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  const b64 = (bytes) => sodium.to_base64(bytes, sodium.base64_variants.ORIGINAL);
  const unb64 = (text) => sodium.from_base64(text, sodium.base64_variants.ORIGINAL);

  class ApiError extends Error {
    constructor(status, error) {
      super((error && error.message) || (status ? "HTTP " + status : "The server refused."));
      this.status = status;
      this.code = (error && error.code) || "";
    }
  }

  // REST with the staff cookie session; state-changing calls carry the CSRF token.
  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-XSRFToken"] = CSRF;
    const resp = await fetch("/api/v1" + path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (resp.status === 401) {
      location.assign("/login?next=" + encodeURIComponent("/console"));
    }
    const data = resp.status === 204 ? null : await resp.json().catch(() => null);
    if (!resp.ok) throw new ApiError(resp.status, data && data.error);
    return data;
  }

  // A Socket.IO call whose acknowledgement is `{ok: true, ...}` or `{ok: false, error}`.
  function call(event, data) {
    return new Promise((resolve, reject) => {
      state.socket.timeout(10000).emit(event, data, (err, reply) => {
        if (err) reject(new Error("The server did not answer."));
        else if (!reply || reply.ok === false) reject(new ApiError(0, reply && reply.error));
        else resolve(reply);
      });
    });
  }

  // --- this browser's device key --------------------------------------------------------
  // Kept in IndexedDB, per agent: the console in one browser is one device, so a reload
  // does not need a new grant from a supervisor. Without IndexedDB it lives in memory.

  function keyStore(mode, use) {
    return new Promise((resolve, reject) => {
      const open = indexedDB.open(KEY_DB, 1);
      open.onupgradeneeded = () => open.result.createObjectStore(KEY_STORE);
      open.onerror = () => reject(open.error);
      open.onsuccess = () => {
        const db = open.result;
        const tx = db.transaction(KEY_STORE, mode);
        const request = use(tx.objectStore(KEY_STORE));
        tx.oncomplete = () => { db.close(); resolve(request.result); };
        tx.onerror = () => { db.close(); reject(tx.error); };
      };
    });
  }

  async function deviceKey() {
    try {
      const stored = await keyStore("readonly", (store) => store.get(USER_ID));
      if (stored && stored.deviceId && stored.privateKey instanceof Uint8Array) return stored;
    } catch (err) { /* no IndexedDB here: the key lives as long as the page */ }
    const pair = sodium.crypto_box_keypair();
    const made = {
      deviceId: "console-" + sodium.to_hex(sodium.randombytes_buf(8)),
      publicKey: pair.publicKey,
      privateKey: pair.privateKey,
    };
    try {
      await keyStore("readwrite", (store) => store.put(made, USER_ID));
    } catch (err) { /* as above */ }
    return made;
  }

  // Forget: the server deletes the public key and the team keys sealed to it, and this
  // browser drops its private key, so a new one (and a new grant) is needed to read again.
  async function forgetDevice() {
    await api("DELETE", "/me/keys/" + encodeURIComponent(state.device.deviceId));
    try {
      await keyStore("readwrite", (store) => store.delete(USER_ID));
    } catch (err) { /* no IndexedDB: the key only ever lived in this page */ }
    state.device = null;
    state.team.clear();
    state.conversations.clear(); // with the conversation keys opened from the team key
    state.selected = null;
    if (state.socket) {
      state.socket.off(); // no reconnecting, no status changes from here on
      state.socket.disconnect();
    }
    $("workspace").hidden = true;
    $("presence").hidden = true;
    $("forget-key").hidden = true;
    $("team-toggle").hidden = true;
    toggleTeamPanel(false);
    $("setup").hidden = false;
    $("setup-text").textContent = "This browser's key is forgotten. Reload the page to make a new one; " +
      "a supervisor will have to grant it the team key again.";
    setStatus("forgotten", "Key forgotten");
  }

  function fingerprint(publicKey) {
    return sodium.to_hex(sodium.crypto_generichash(8, publicKey)).match(/.{4}/g).join(" ");
  }

  // --- the team key -------------------------------------------------------------------

  async function openGrants() {
    const grants = await api("GET", "/support/team-keys/grants");
    for (const grant of grants.items) {
      if (grant.device_key_id !== state.deviceKeyId || state.team.has(grant.team_key_id)) continue;
      try {
        const privateKey = sodium.crypto_box_seal_open(unb64(grant.sealed_private_key), state.device.publicKey,
                                                       state.device.privateKey);
        state.team.set(grant.team_key_id, { publicKey: sodium.crypto_scalarmult_base(privateKey), privateKey });
      } catch (err) { /* sealed to an earlier key of this device id: it needs a new grant */ }
    }
    return state.team.size > 0;
  }

  async function teamKeys() {
    const listed = await api("GET", "/admin/support/team-keys");
    state.activeTeamKey = listed.items.find((k) => k.active) || null;
    return listed.items;
  }

  // Until this console holds a team key. A supervisor on a deployment without one creates
  // it here; everyone else waits for a supervisor whose console holds it to grant it.
  async function waitForGrant() {
    for (;;) {
      if (await openGrants()) return;
      if (SUPERVISOR && (await teamKeys()).length === 0) {
        await offerTeamKey();
        continue;
      }
      setStatus("waiting", "Waiting for the team key");
      $("setup-text").textContent = (SUPERVISOR
        ? "Waiting for a supervisor to grant the team key to this console: the team key exists already, " +
          "and only another supervisor whose console holds it can grant it to this one. "
        : "Waiting for a supervisor to grant the team key to this console. ") +
        "Give them this console's device key id and check the fingerprint with them.";
      await new Promise((resolve) => setTimeout(resolve, GRANT_POLL_MS));
    }
  }

  // The first supervisor's console makes the team pair, registers the public half and
  // seals the private half to its own device key, as it would to an agent's; the private
  // half then comes back through this console's grant like everyone's.
  function offerTeamKey() {
    setStatus("no-team-key", "No team key yet");
    $("setup-text").textContent = "Support has no team key yet, so no conversation can be opened. Create it here: " +
      "this browser makes the team key pair, registers its public half, and seals the private half to this " +
      "console's device key. The server never sees the private half. You then grant it to each agent's console.";
    const button = $("create-team-key");
    button.hidden = false;
    button.disabled = false;
    return new Promise((resolve) => {
      const create = async () => {
        button.disabled = true;
        try {
          // Another supervisor may have been first; a registered key whose grant failed is sealed again.
          if (state.unsealedTeam || (await teamKeys()).length === 0) await createTeamKey();
          button.removeEventListener("click", create);
          button.hidden = true;
          resolve();
        } catch (err) {
          setStatus("no-team-key", "No team key yet");
          $("setup-text").textContent = "The team key could not be created: " + err.message + ". Try again.";
          button.disabled = false;
        }
      };
      button.addEventListener("click", create);
    });
  }

  async function createTeamKey() {
    setStatus("creating", "Creating the team key");
    if (!state.unsealedTeam) {
      const pair = sodium.crypto_box_keypair();
      const made = await api("POST", "/admin/support/team-keys", { public_key: b64(pair.publicKey) });
      state.activeTeamKey = made;
      // Until its first grant is stored the private half exists only here: a failed PUT is retried with it.
      state.unsealedTeam = { keyId: made.key_id, privateKey: pair.privateKey };
    }
    const team = state.unsealedTeam;
    await sealTeamKey(team.keyId, team.privateKey, USER_ID, state.device.deviceId, state.device.publicKey);
    sodium.memzero(team.privateKey);
    state.unsealedTeam = null;
    state.created = true; // the panel opens next: the agents' consoles wait for their grants
  }

  function sealTeamKey(teamKeyId, privateKey, userId, deviceId, devicePublicKey) {
    const number = teamKeyId.split(":")[1];
    return api("PUT", "/admin/support/team-keys/" + encodeURIComponent(number) + "/grants/" +
               encodeURIComponent(userId) + "/" + encodeURIComponent(deviceId),
               { sealed_private_key: b64(sodium.crypto_box_seal(privateKey, devicePublicKey)) });
  }

  // --- the team keys panel (supervisors holding the active team key) --------------------

  async function loadHolders() {
    const [, listed] = await Promise.all([teamKeys(), api("GET", "/admin/support/agents")]);
    state.holders = listed.items;
    renderHolders();
  }

  function pollHolders() {
    clearTimeout(state.holdersTimer);
    if ($("team-panel").hidden) return;
    loadHolders().catch((err) => { $("team-notice").textContent = err.message; });
    state.holdersTimer = setTimeout(pollHolders, HOLDERS_POLL_MS);
  }

  function toggleTeamPanel(open) {
    $("team-panel").hidden = !open;
    $("team-toggle").setAttribute("aria-expanded", String(open));
    if (open) pollHolders();
    else clearTimeout(state.holdersTimer);
  }

  function renderHolders() {
    const active = state.activeTeamKey;
    const held = active && state.team.get(active.key_id);
    const drawn = JSON.stringify([active, !!held, state.holders, state.confirming]);
    if (drawn === state.holdersShown) return;
    state.holdersShown = drawn;
    $("team-key-id").textContent = active ? active.key_id : "none";
    $("team-fingerprint").textContent = active ? fingerprint(unb64(active.public_key)) : "–";
    $("team-notice").textContent = active && !held ? "This console does not hold the active team key " +
      active.key_id + ": another supervisor must grant it to this console before it can grant it to others." : "";
    const rows = [];
    for (const person of state.holders) {
      const devices = person.devices.length ? person.devices : [null];
      devices.forEach((device, index) => {
        const tr = el("tr");
        if (index === 0) {
          const who = el("td", "person", person.display_name || person.user_id);
          if (person.user_id === USER_ID) who.appendChild(el("span", "sub", "you"));
          else if (person.email) who.appendChild(el("span", "sub", person.email));
          who.rowSpan = devices.length;
          tr.appendChild(who);
        }
        if (!device) {
          const none = el("td", "quiet", "No console key yet: they open the support console to make one.");
          none.colSpan = 4;
          tr.appendChild(none);
          rows.push(tr);
          return;
        }
        tr.dataset.keyId = device.key_id;
        const name = el("td");
        const code = el("code", "", device.device_id);
        code.title = device.key_id;
        name.appendChild(code);
        if (device.key_id === state.deviceKeyId) name.appendChild(el("span", "sub", "this console"));
        tr.appendChild(name);
        const print = el("td", "fingerprint");
        print.appendChild(el("code", "", fingerprint(unb64(device.public_key))));
        tr.appendChild(print);
        const granted = active && device.team_key_ids.includes(active.key_id);
        const badge = el("td");
        badge.appendChild(el("span", "badge " + (granted ? "granted" : "missing"), granted ? "granted" : "no grant"));
        tr.appendChild(badge);
        tr.appendChild(grantCell(person, device, granted || !held));
        rows.push(tr);
      });
    }
    $("holders").replaceChildren(...rows);
    $("holders-empty").hidden = rows.length > 0;
  }

  // "Grant", then a confirmation that names the fingerprint to compare once more.
  function grantCell(person, device, nothingToDo) {
    const td = el("td");
    if (nothingToDo) return td;
    if (state.confirming !== device.key_id) {
      const grant = el("button", "grant", "Grant");
      grant.type = "button";
      grant.setAttribute("aria-label", "Grant the team key to " + device.device_id);
      grant.addEventListener("click", () => { state.confirming = device.key_id; renderHolders(); });
      td.appendChild(grant);
      return td;
    }
    const confirm = el("span", "grant-confirm");
    const question = el("span", "question", "Their console shows ");
    question.append(el("code", "", fingerprint(unb64(device.public_key))), "?");
    confirm.appendChild(question);
    const yes = el("button", "confirm-grant", "Yes, grant");
    yes.type = "button";
    yes.addEventListener("click", async () => {
      yes.disabled = true;
      let failed = "";
      try {
        const active = state.activeTeamKey;
        await sealTeamKey(active.key_id, state.team.get(active.key_id).privateKey, person.user_id, device.device_id,
                          unb64(device.public_key));
      } catch (err) {
        failed = "Not granted: " + err.message;
      }
      state.confirming = "";
      await loadHolders().catch((err) => { failed = failed || err.message; });
      renderHolders();
      if (failed) $("team-notice").textContent = failed;
    });
    const no = el("button", "cancel-grant", "Cancel");
    no.type = "button";
    no.addEventListener("click", () => { state.confirming = ""; renderHolders(); });
    confirm.append(yes, no);
    td.appendChild(confirm);
    return td;
  }

  // --- conversations ------------------------------------------------------------------

  function upsert(view) {
    let c = state.conversations.get(view.id);
    if (!c) {
      c = { id: view.id, view: { read: {} }, key: null, messages: new Map(), pending: new Map(), lastSeq: 0,
            loaded: false, loading: null, joined: false, typingUntil: 0, unread: 0 };
      state.conversations.set(view.id, c);
    }
    const read = Object.assign({}, c.view.read);
    for (const [user, seq] of Object.entries(view.read || {})) read[user] = Math.max(read[user] || 0, seq);
    c.view = Object.assign({}, c.view, view, { read });
    if (typeof view.unread === "number") c.unread = view.unread;
    return c;
  }

  function isMine(c) {
    return c.view.assignee_id === USER_ID;
  }

  function isQueued(c) {
    return c.view.queued && !c.view.assignee_id;
  }

  // The conversation key, opened from its copy sealed to a team key this console holds.
  function conversationKey(c) {
    if (c.key) return c.key;
    for (const [keyId, team] of state.team) {
      const sealed = c.view.wrapped_keys && c.view.wrapped_keys[keyId];
      if (!sealed) continue;
      try {
        c.key = sodium.crypto_box_seal_open(unb64(sealed), team.publicKey, team.privateKey);
        return c.key;
      } catch (err) { /* not this key */ }
    }
    return null;
  }

  function decrypt(c, message) {
    const key = conversationKey(c);
    if (!key) return { error: "This console holds no key for this conversation (" + c.view.team_key_id + ")." };
    try {
      const plain = sodium.crypto_secretbox_open_easy(unb64(message.ciphertext), unb64(message.nonce), key);
      return { text: sodium.to_string(plain) };
    } catch (err) {
      return { error: "This message could not be decrypted." };
    }
  }

  function addMessage(c, message) {
    if (!c.messages.has(message.seq)) {
      c.messages.set(message.seq, { seq: message.seq, senderId: message.sender_id, createdMs: message.created_ms,
                                    body: decrypt(c, message) });
    }
  }

  // Everything after the last sequence this page has: on opening, after a reconnect, and
  // when a live message shows a gap.
  function loadHistory(c) {
    if (!c.loading) {
      c.loading = (async () => {
        for (;;) {
          const page = await api("GET", "/support/conversations/" + encodeURIComponent(c.id) +
                                        "/messages?limit=200&after_seq=" + c.lastSeq);
          page.items.forEach((m) => addMessage(c, m));
          c.lastSeq = Math.max(c.lastSeq, page.last_seq);
          if (!page.more || !page.items.length) break;
        }
        c.loaded = true;
      })().finally(() => { c.loading = null; });
    }
    return c.loading;
  }

  async function join(c) {
    if (c.joined) return;
    await call("support.join", { conversation_id: c.id });
    c.joined = true;
  }

  function forget(c, why) {
    if (c.joined && state.socket.connected) call("support.leave", { conversation_id: c.id }).catch(() => {});
    state.conversations.delete(c.id);
    if (state.selected === c.id) {
      state.selected = null;
      notice("");
      $("empty").textContent = why;
    }
  }

  // A conversation's new assignment: mine (join it), the queue, or another agent's (drop it).
  async function placed(c) {
    if (!isMine(c) && !isQueued(c)) {
      forget(c, "That conversation is now with another agent.");
    } else if (isMine(c) && state.socket.connected) {
      await join(c).catch((err) => notice(err.message));
    }
    render();
  }

  async function markRead(c) {
    if (state.selected !== c.id || document.visibilityState !== "visible" || !c.joined) return;
    const last = Math.max(0, ...c.messages.keys());
    if (last <= (c.view.read[USER_ID] || 0)) return;
    c.view.read[USER_ID] = last;
    c.unread = 0;
    renderLists();
    await call("support.read", { conversation_id: c.id, seq: last }).catch(() => {});
  }

  async function select(id) {
    const c = state.conversations.get(id);
    if (!c) return;
    state.selected = id;
    notice("");
    render();
    try {
      await join(c);
      await loadHistory(c);
    } catch (err) {
      notice(err.code === "conversation_not_found" ? "That conversation is no longer open to you." : err.message);
      if (err.code === "conversation_not_found") forget(c, "That conversation is no longer open to you.");
    }
    render();
    markRead(c);
  }

  // --- sending ------------------------------------------------------------------------

  async function send(c, text) {
    const key = conversationKey(c);
    if (!key) throw new Error("This console holds no key for this conversation.");
    const plain = sodium.from_string(text);
    if (plain.length > MAX_PLAINTEXT_BYTES) throw new Error("The message is too long.");
    const nonce = sodium.randombytes_buf(sodium.crypto_secretbox_NONCEBYTES); // fresh for every message
    const pending = {
      clientId: sodium.to_hex(sodium.randombytes_buf(12)),
      text, state: "sending", error: "",
    };
    pending.payload = { conversation_id: c.id, client_id: pending.clientId, nonce: b64(nonce),
                        ciphertext: b64(sodium.crypto_secretbox_easy(plain, nonce, key)) };
    c.pending.set(pending.clientId, pending);
    renderMessages();
    await deliver(c, pending);
  }

  // A retry sends the same client id, so the server stores the message once.
  async function deliver(c, pending) {
    pending.state = "sending";
    renderMessages();
    try {
      const ack = await call("support.send", pending.payload);
      c.pending.delete(pending.clientId);
      if (!c.messages.has(ack.seq)) {
        c.messages.set(ack.seq, { seq: ack.seq, senderId: USER_ID, createdMs: Date.now(), body: { text: pending.text } });
      }
      if (ack.seq === c.lastSeq + 1) c.lastSeq = ack.seq;
    } catch (err) {
      pending.state = "failed";
      pending.error = err.message;
    }
    renderMessages();
  }

  // --- rendering (text only) ------------------------------------------------------------

  function render() {
    renderLists();
    renderDetail();
  }

  function renderLists() {
    const all = [...state.conversations.values()].sort((a, b) => b.view.updated_ms - a.view.updated_ms);
    for (const [listId, include] of [["mine", isMine], ["queue", isQueued]]) {
      const items = all.filter(include).map((c) => {
        const li = el("li");
        const button = el("button", "conversation-item" + (c.id === state.selected ? " selected" : ""));
        button.type = "button";
        button.dataset.id = c.id;
        button.appendChild(el("span", "subject", c.view.subject));
        button.appendChild(el("span", "badge status-" + c.view.status, c.view.status));
        if (c.unread > 0 && c.id !== state.selected) button.appendChild(el("span", "badge unread", c.unread));
        button.addEventListener("click", () => select(c.id));
        li.appendChild(button);
        return li;
      });
      $(listId).replaceChildren(...items);
      $(listId + "-empty").hidden = items.length > 0;
    }
  }

  function renderDetail() {
    const c = state.conversations.get(state.selected);
    $("detail").hidden = !c;
    $("empty").hidden = !!c;
    if (!c) return;
    const mine = isMine(c);
    $("subject").textContent = c.view.subject;
    $("meta").textContent = "Opened " + new Date(c.view.created_ms).toLocaleString() + " · " +
      (mine ? "assigned to you" : isQueued(c) ? "waiting in the queue" : "with another agent") +
      " · " + c.view.status;
    $("claim").hidden = !isQueued(c);
    $("release").hidden = !mine;
    $("transfer").hidden = !mine;
    renderAgents();
    $("status-select").disabled = !mine;
    $("status-select").value = c.view.status;
    $("reply").disabled = !mine;
    $("send").disabled = !mine;
    $("reply").placeholder = mine ? "Reply…" : "Claim the conversation to reply.";
    renderMessages();
  }

  function renderMessages() {
    const c = state.conversations.get(state.selected);
    if (!c) return;
    const viewerRead = c.view.read[c.view.viewer_id] || 0;
    const items = [...c.messages.values()].sort((a, b) => a.seq - b.seq).map((m) => {
      const own = m.senderId === USER_ID;
      const li = el("li", "message " + (own ? "own" : m.senderId === c.view.viewer_id ? "viewer" : "agent"));
      li.dataset.seq = String(m.seq);
      const who = own ? "You" : m.senderId === c.view.viewer_id ? "Viewer" : "Another agent";
      const head = el("div", "message-head");
      head.appendChild(el("span", "who", who));
      head.appendChild(el("span", "when", "#" + m.seq + " · " + time(m.createdMs)));
      if (own) head.appendChild(el("span", "receipt", viewerRead >= m.seq ? "Read" : "Delivered"));
      li.appendChild(head);
      li.appendChild(m.body.error ? el("p", "body undecryptable", m.body.error) : el("p", "body", m.body.text));
      return li;
    });
    for (const p of c.pending.values()) {
      const li = el("li", "message own pending");
      const head = el("div", "message-head");
      head.appendChild(el("span", "who", "You"));
      head.appendChild(el("span", "receipt", p.state === "failed" ? "Not sent: " + p.error : "Sending…"));
      if (p.state === "failed") {
        const retry = el("button", "retry", "Retry");
        retry.type = "button";
        retry.addEventListener("click", () => deliver(c, p));
        head.appendChild(retry);
      }
      li.appendChild(head);
      li.appendChild(el("p", "body", p.text));
      items.push(li);
    }
    const list = $("messages");
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.replaceChildren(...items);
    if (atBottom) list.scrollTop = list.scrollHeight;
    $("read-state").textContent = viewerRead ? "The viewer has read up to #" + viewerRead + "." : "";
    renderTyping();
  }

  function renderAgents() {
    const select = $("transfer-to");
    const chosen = select.value;
    const options = state.agents.filter((a) => a.user_id !== USER_ID).map((a) => {
      const option = el("option", "", (a.display_name || a.user_id) + " · " + (a.online ? "online" : "offline") +
                        " · " + a.open + "/" + a.capacity);
      option.value = a.user_id;
      return option;
    });
    select.replaceChildren(...options);
    if (options.some((o) => o.value === chosen)) select.value = chosen;
    $("transfer-button").disabled = options.length === 0;
  }

  async function loadAgents() {
    const listed = await api("GET", "/support/agents?limit=100");
    state.agents = listed.items;
    renderAgents();
  }

  function renderTyping() {
    const c = state.conversations.get(state.selected);
    $("typing").textContent = c && c.typingUntil > Date.now() ? c.typingWho + " is typing…" : "";
  }

  // --- the socket -----------------------------------------------------------------------

  async function presence(withCapacity) {
    const body = { available: $("available").checked };
    if (withCapacity) body.capacity = Number($("capacity").value) || 1;
    const form = $("presence");
    form.dataset.state = "saving";
    try {
      const reply = await call("support.presence", body);
      $("capacity").value = String(reply.capacity);
      form.dataset.state = reply.available ? "available" : "away";
    } catch (err) {
      form.dataset.state = "error";
      notice(err.message);
    }
  }

  // After every (re)connect: rooms are gone, so join again and fetch what was missed.
  async function sync() {
    await presence(false);
    await loadAgents().catch((err) => notice(err.message));
    const listing = await api("GET", "/support/conversations");
    const listed = new Set(listing.items.map((v) => v.id));
    for (const c of [...state.conversations.values()]) {
      c.joined = false;
      if (!listed.has(c.id)) forget(c, "That conversation is no longer open to you.");
    }
    listing.items.forEach(upsert);
    for (const c of state.conversations.values()) {
      if (isMine(c) || c.id === state.selected) {
        await join(c).catch(() => {});
        if (c.loaded || c.id === state.selected) await loadHistory(c).catch(() => {});
      }
    }
    render();
    const selected = state.conversations.get(state.selected);
    if (selected) markRead(selected);
  }

  function connect() {
    const socket = io("/support", { transports: ["websocket"], withCredentials: true });
    state.socket = socket;
    setStatus("connecting", "Connecting…");
    socket.on("connect", () => {
      setStatus("syncing", "Catching up…");
      sync().then(() => setStatus("live", "Live"), (err) => {
        setStatus("error", "Connected, but catching up failed");
        notice(err.message);
      });
    });
    socket.on("connect_error", (err) => setStatus("error", "Not connected: " + ((err && err.message) || "error")));
    socket.on("disconnect", () => setStatus("disconnected", "Disconnected; reconnecting…"));
    socket.on("session.revoked", () => location.assign("/login?next=" + encodeURIComponent("/console")));

    socket.on("support.queue", (data) => {
      if (data && data.conversation) placed(upsert(data.conversation));
    });
    socket.on("support.assigned", (data) => {
      const c = state.conversations.get(data.conversation_id);
      if (c) placed(upsert({ id: c.id, assignee_id: data.assignee_id, queued: data.queued }));
    });
    socket.on("support.message", (m) => {
      const c = state.conversations.get(m.conversation_id);
      if (!c) return;
      if (m.sender_id !== USER_ID) {
        c.typingUntil = 0;
        if (m.seq > (c.view.read[USER_ID] || 0)) c.unread += 1;
      }
      c.view.updated_ms = Math.max(c.view.updated_ms || 0, m.created_ms);
      if (c.loaded) {
        if (m.seq > c.lastSeq + 1) {
          loadHistory(c).then(() => { renderMessages(); markRead(c); }).catch((err) => notice(err.message));
        } else {
          addMessage(c, m);
          c.lastSeq = Math.max(c.lastSeq, m.seq);
        }
      }
      renderLists();
      if (c.id === state.selected) {
        renderMessages();
        markRead(c);
      }
    });
    socket.on("support.typing", (data) => {
      const c = state.conversations.get(data.conversation_id);
      if (!c || data.user_id === USER_ID) return;
      c.typingUntil = Date.now() + TYPING_SHOWN_MS;
      c.typingWho = data.user_id === c.view.viewer_id ? "The viewer" : "Another agent";
      renderTyping();
      setTimeout(renderTyping, TYPING_SHOWN_MS + 50);
    });
    socket.on("support.read", (data) => {
      const c = state.conversations.get(data.conversation_id);
      if (!c) return;
      upsert({ id: c.id, read: { [data.user_id]: data.seq } });
      if (c.id === state.selected) renderMessages();
    });
    socket.on("support.status", (data) => {
      const c = state.conversations.get(data.conversation_id);
      if (!c) return;
      upsert({ id: c.id, status: data.status });
      render();
    });
  }

  // --- controls -------------------------------------------------------------------------

  function current() {
    return state.conversations.get(state.selected);
  }

  function wireControls() {
    $("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      const c = current();
      const text = $("reply").value;
      if (!c || !text.trim()) return;
      notice("");
      send(c, text).catch((err) => {
        notice(err.message);
        if (!$("reply").value) $("reply").value = text; // not sent: give the text back
      });
      $("reply").value = "";
    });
    $("reply").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        $("composer").requestSubmit();
      }
    });
    $("reply").addEventListener("input", () => {
      const c = current();
      const now = Date.now();
      if (!c || !isMine(c) || now - state.lastTypingSent < TYPING_SENT_EVERY_MS) return;
      state.lastTypingSent = now;
      call("support.typing", { conversation_id: c.id }).catch(() => {});
    });
    $("claim").addEventListener("click", async () => {
      const c = current();
      if (!c) return;
      try {
        const reply = await call("support.claim", { conversation_id: c.id });
        await placed(upsert(reply.conversation));
      } catch (err) {
        notice(err.code === "already_assigned" || err.code === "conversation_not_found"
          ? "Another agent took this conversation." : err.message);
        if (err.code === "already_assigned" || err.code === "conversation_not_found") {
          forget(c, "Another agent took that conversation.");
          render();
        }
      }
    });
    $("release").addEventListener("click", async () => {
      const c = current();
      if (!c) return;
      try {
        const reply = await call("support.release", { conversation_id: c.id });
        await placed(upsert(reply.conversation));
      } catch (err) {
        notice(err.message);
      }
    });
    $("transfer-to").addEventListener("focus", () => loadAgents().catch(() => {}));
    $("transfer-button").addEventListener("click", async () => {
      const c = current();
      const to = $("transfer-to").value;
      if (!c || !to) return;
      try {
        const reply = await call("support.transfer", { conversation_id: c.id, to });
        await placed(upsert(reply.conversation));
        loadAgents().catch(() => {});
      } catch (err) {
        notice(err.code === "not_an_agent" ? "That person is not a support agent." : err.message);
      }
    });
    $("team-toggle").addEventListener("click", () => toggleTeamPanel($("team-panel").hidden));
    $("team-refresh").addEventListener("click", () => pollHolders());
    $("forget-key").addEventListener("click", () => {
      forgetDevice().catch((err) => notice(err.message));
    });
    $("status-select").addEventListener("change", async () => {
      const c = current();
      if (!c) return;
      try {
        const reply = await call("support.status", { conversation_id: c.id, status: $("status-select").value });
        upsert(reply.conversation);
      } catch (err) {
        notice(err.message);
      }
      render();
    });
    $("available").addEventListener("change", () => presence(false));
    $("capacity").addEventListener("change", () => presence(true));
    $("presence").addEventListener("submit", (event) => event.preventDefault());
    document.addEventListener("visibilitychange", () => {
      const c = current();
      if (c) markRead(c);
    });
  }

  // --- start ----------------------------------------------------------------------------

  async function start() {
    setStatus("starting", "Starting…");
    await sodium.ready;
    state.device = await deviceKey();
    $("fingerprint").textContent = fingerprint(state.device.publicKey);
    setStatus("registering", "Registering this console's key");
    const registered = await api("PUT", "/me/keys/" + encodeURIComponent(state.device.deviceId),
                                 { public_key: b64(state.device.publicKey) });
    state.deviceKeyId = registered.key_id;
    $("device-key-id").textContent = registered.key_id;
    await waitForGrant();
    $("setup").hidden = true;
    $("workspace").hidden = false;
    $("presence").hidden = false;
    $("forget-key").hidden = false;
    wireControls();
    if (SUPERVISOR) {
      await teamKeys();
      // Only a console holding the active team key can seal it to others.
      if (state.activeTeamKey && state.team.has(state.activeTeamKey.key_id)) {
        $("team-toggle").hidden = false;
        if (state.created) toggleTeamPanel(true);
      }
    }
    connect();
  }

  start().catch((err) => {
    setStatus("error", "The console could not start: " + err.message);
    $("setup-text").textContent = err.message;
  });
})();
