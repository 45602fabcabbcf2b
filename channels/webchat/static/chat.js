// ESS web chat client: one websocket, a signed conversation token, replay after reconnect.
// Nothing here plays a sound or asks for notifications; in silent mode the token is kept
// only in memory and nothing the reporter taps is echoed on screen.
(() => {
  "use strict";
  const config = JSON.parse(document.getElementById("ess-config").textContent);
  const ui = Object.assign({}, config.ui);
  let lang = config.lang;
  const $ = (id) => document.getElementById(id);
  const KEY = "ess-chat";
  let silent = !!config.silent;
  let memory = { token: null, seq: 0 };
  let exiting = false;
  let ws = null;
  let retry = 0;
  let busyUntil = 0;
  const pending = new Map();

  const store = {
    load() {
      if (silent) return memory;
      try { return JSON.parse(sessionStorage.getItem(KEY)) || memory; } catch (e) { return memory; }
    },
    save(state) {
      memory = state;
      if (!silent) { try { sessionStorage.setItem(KEY, JSON.stringify(state)); } catch (e) { /* private mode */ } }
    },
    clear() { memory = { token: null, seq: 0 }; try { sessionStorage.removeItem(KEY); } catch (e) { /* ignore */ } },
  };
  let state = store.load();

  function newId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function connect() {
    if (exiting) return;
    $("status").textContent = ui.connecting;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(proto + "//" + location.host + "/chat/ws");
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "hello", token: state.token, after: state.seq, silent, lang }));
    };
    ws.onmessage = (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      receive(frame);
    };
    ws.onclose = () => {
      if (exiting) return;
      if (busyUntil > Date.now()) { setTimeout(connect, busyUntil - Date.now()); return; }
      $("status").textContent = ui.offline;
      setTimeout(connect, Math.min(8000, 400 * 2 ** retry++));
    };
  }

  function receive(frame) {
    if (frame.type === "welcome") {
      // A renewed token is the same conversation: keep the place in the replay.
      const fresh = frame.token !== state.token && !frame.renewed;
      state = { token: frame.token, seq: fresh ? 0 : state.seq };
      store.save(state);
      retry = 0;
      $("status").textContent = "";
      if (fresh) send({ type: "start", flow: silent ? "silent" : "report" }, null);
      for (const old of pending.values()) ws.send(JSON.stringify(old));
    } else if (frame.type === "message") {
      if (frame.seq <= state.seq) return;
      state = { token: state.token, seq: frame.seq };
      store.save(state);
      show(frame);
    } else if (frame.type === "ack") {
      pending.delete(frame.id);
      if (!pending.size && $("status").textContent === ui.busy) $("status").textContent = "";
    } else if (frame.type === "error" && (frame.code === "busy" || frame.code === "slow_down"
        || frame.code === "unavailable")) {
      // Refused, not lost: the frame stays pending and goes again after the pause.
      const wait = 1000 * Math.min(60, Math.max(1, Number(frame.retry_after) || 2));
      $("status").textContent = ui.busy;
      if (frame.code === "busy") { busyUntil = Date.now() + wait; return; }
      setTimeout(() => {
        const again = pending.get(frame.id);
        if (again && ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(again));
      }, wait);
    }
  }

  function bubble(text, who) {
    const li = document.createElement("li");
    li.className = who;
    li.textContent = text;
    const log = $("log");
    log.appendChild(li);
    while (log.children.length > 200) log.removeChild(log.firstChild);
    li.scrollIntoView({ block: "end" });
  }

  function send(frame, echo) {
    frame.id = newId();
    pending.set(frame.id, frame);
    if (echo && !silent) bubble(echo, "me");
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
  }

  // The page's own labels follow the conversation's language (the language command, or a
  // language the server chose): every labelled element names its catalog key.
  function applyLang(next) {
    const table = config.uis && config.uis[next];
    if (!table || next === lang) return;
    lang = next;
    Object.assign(ui, table);
    document.documentElement.lang = next;
    for (const el of document.querySelectorAll("[data-ui]")) el.textContent = ui[el.dataset.ui];
    for (const el of document.querySelectorAll("[data-ui-aria]")) el.setAttribute("aria-label", ui[el.dataset.uiAria]);
    for (const el of document.querySelectorAll("[data-ui-placeholder]")) el.setAttribute("placeholder", ui[el.dataset.uiPlaceholder]);
    const title = silent ? ui.neutral_title : ui.title;
    document.title = title;
    $("heading").textContent = title;
  }

  function show(frame) {
    if (frame.lang) applyLang(frame.lang);
    bubble(frame.text, "bot");
    // A notice (status update) leaves the pending question's buttons and inputs alone.
    if (frame.notice) return;
    const box = $("choices");
    box.replaceChildren();
    for (const choice of frame.choices) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = choice.label;
      button.dataset.value = choice.value;
      button.addEventListener("click", () => pick(choice));
      box.appendChild(button);
    }
    $("location").hidden = frame.ask !== "location";
    $("phone-form").hidden = frame.ask !== "phone";
    if (frame.ask === "location") resetMap();
    const first = frame.ask === "location" ? $("geo")
      : frame.ask === "phone" ? $("phone") : box.querySelector("button");
    if (first) first.focus({ preventScroll: true });
  }

  function pick(choice) {
    $("choices").replaceChildren();
    if (choice.value === "cmd:silent") enterSilent();
    send({ type: "choice", value: choice.value }, choice.label);
  }

  function enterSilent() {
    silent = true;
    document.body.classList.add("silent");
    document.title = ui.neutral_title;
    $("heading").textContent = ui.neutral_title;
    $("favicon").setAttribute("href", "/chat/static/neutral.svg");
    $("text-form").hidden = true;
    const keep = state;
    store.clear();
    memory = keep;
  }

  function sendLocation(lat, lon, accuracy, source) {
    $("location").hidden = true;
    send({ type: "location", lat, lon, accuracy, source }, null);
  }

  // -- the location step: device first, then a tap on the map, then typed text ----------
  $("geo").addEventListener("click", () => {
    if (!navigator.geolocation) { $("geo-status").textContent = ui.location_denied; $("map").focus(); return; }
    $("geo-status").textContent = ui.locating;
    navigator.geolocation.getCurrentPosition(
      (pos) => { $("geo-status").textContent = ""; sendLocation(pos.coords.latitude, pos.coords.longitude, pos.coords.accuracy, "device"); },
      () => { $("geo-status").textContent = ui.location_denied; $("map").focus(); },
      { enableHighAccuracy: true, timeout: 20000, maximumAge: 0 });
  });

  const TILE = 256;
  const map = { lat: 13.0, lon: 101.0, zoom: 5, pin: null };
  const world = (z) => TILE * 2 ** z;
  function project(lat, lon, z) {
    const s = Math.sin((Math.max(-85, Math.min(85, lat)) * Math.PI) / 180);
    return { x: ((lon + 180) / 360) * world(z), y: (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * world(z) };
  }
  function unproject(x, y, z) {
    const lon = (x / world(z)) * 360 - 180;
    const n = Math.PI - (2 * Math.PI * y) / world(z);
    return { lat: (180 / Math.PI) * Math.atan(Math.sinh(n)), lon };
  }
  function drawMap() {
    const el = $("map");
    const w = el.clientWidth, h = el.clientHeight;
    const c = project(map.lat, map.lon, map.zoom);
    const tiles = $("tiles");
    tiles.replaceChildren();
    $("map-note").hidden = !!config.tileUrl;
    if (config.tileUrl) {
      const n = 2 ** map.zoom;
      const x0 = Math.floor((c.x - w / 2) / TILE), x1 = Math.floor((c.x + w / 2) / TILE);
      const y0 = Math.floor((c.y - h / 2) / TILE), y1 = Math.floor((c.y + h / 2) / TILE);
      for (let tx = x0; tx <= x1; tx++) for (let ty = Math.max(0, y0); ty <= Math.min(n - 1, y1); ty++) {
        const img = document.createElement("img");
        img.alt = "";
        img.src = config.tileUrl.replace("{z}", map.zoom).replace("{x}", ((tx % n) + n) % n).replace("{y}", ty).replace("{s}", "a");
        img.style.left = tx * TILE - (c.x - w / 2) + "px";
        img.style.top = ty * TILE - (c.y - h / 2) + "px";
        img.onerror = () => { img.remove(); $("map-note").hidden = false; };
        tiles.appendChild(img);
      }
    }
    const marker = $("marker");
    if (map.pin) {
      const p = project(map.pin.lat, map.pin.lon, map.zoom);
      marker.style.left = p.x - (c.x - w / 2) + "px";
      marker.style.top = p.y - (c.y - h / 2) + "px";
      marker.hidden = false;
    } else marker.hidden = true;
    $("map-send").disabled = !map.pin;
  }
  function resetMap() { map.pin = null; drawMap(); }
  function placeAt(px, py) {
    const el = $("map");
    const c = project(map.lat, map.lon, map.zoom);
    map.pin = unproject(c.x - el.clientWidth / 2 + px, c.y - el.clientHeight / 2 + py, map.zoom);
    drawMap();
  }
  $("map").addEventListener("click", (e) => {
    const r = $("map").getBoundingClientRect();
    placeAt(e.clientX - r.left, e.clientY - r.top);
  });
  $("map").addEventListener("keydown", (e) => {
    const el = $("map");
    const step = 12;
    let p = map.pin ? project(map.pin.lat, map.pin.lon, map.zoom) : null;
    const c = project(map.lat, map.lon, map.zoom);
    const at = p ? { x: p.x - (c.x - el.clientWidth / 2), y: p.y - (c.y - el.clientHeight / 2) }
      : { x: el.clientWidth / 2, y: el.clientHeight / 2 };
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step], Enter: [0, 0], " ": [0, 0] };
    if (!(e.key in moves)) return;
    e.preventDefault();
    placeAt(at.x + moves[e.key][0], at.y + moves[e.key][1]);
  });
  function zoom(by) {
    if (map.pin) { map.lat = map.pin.lat; map.lon = map.pin.lon; }
    map.zoom = Math.max(3, Math.min(18, map.zoom + by));
    drawMap();
  }
  $("zoom-in").addEventListener("click", () => zoom(1));
  $("zoom-out").addEventListener("click", () => zoom(-1));
  $("map-send").addEventListener("click", () => { if (map.pin) sendLocation(map.pin.lat, map.pin.lon, null, "map"); });

  function onSubmit(formId, inputId, type) {
    $(formId).addEventListener("submit", (e) => {
      e.preventDefault();
      const value = $(inputId).value.trim();
      if (!value) return;
      $(inputId).value = "";
      if (type === "location") $("location").hidden = true;
      if (type === "phone") $("phone-form").hidden = true;
      send({ type: "text", text: value }, value);
    });
  }
  onSubmit("address-form", "address", "location");
  onSubmit("phone-form", "phone", "phone");
  onSubmit("text-form", "text", "text");

  // Quick exit: revoke the token on the server (so a copy of it cannot reopen this
  // conversation), replace this page (no new history entry), forget the token, close.
  $("exit").addEventListener("click", () => {
    exiting = true;
    const token = state.token;
    try { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "exit" })); } catch (e) { /* the beacon below */ }
    try { if (token) navigator.sendBeacon("/chat/revoke", token); } catch (e) { /* best effort */ }
    store.clear();
    try { if (ws) ws.close(); } catch (e) { /* closing anyway */ }
    document.title = "";
    document.body.replaceChildren();
    location.replace(config.exitUrl);
  });

  if (silent) enterSilent();
  connect();
})();
