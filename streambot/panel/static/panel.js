// The operator's panel: state and preview pushed by server-sent events, actions as JSON.
"use strict";

const STRINGS = {
  en: {connecting: "connecting", live: "live", offline: "offline", skip: "Skip",
       pause: "Pause autopilot", resume: "Resume autopilot", takeover: "Take over",
       handback: "Hand back", say: "Say", say_hint: "A line for the host to say",
       pitch: "Pitch", now: "Saying now", script: "Script", health: "Health", queue: "Queue",
       decisions: "Triage", recent: "Recent answers", products: "Products", first: "Answer first",
       drop: "Drop", save: "Save", idle: "(quiet)", taken: "taken over", paused: "paused",
       late: "late frames", p50: "first frame p50", p95: "p95", price: "price", stock: "stock",
       voice: "voice", requests: "requests", fallbacks: "local voice", broken_off: "broken off",
       unplayable: "unplayable", breaker: "breaker", skipped: "skipped", face: "face",
       served: "served batches", local: "local batches"},
  zh: {connecting: "连接中", live: "直播中", offline: "已断开", skip: "跳过",
       pause: "暂停自动播报", resume: "恢复自动播报", takeover: "人工接管", handback: "交还主播",
       say: "说", say_hint: "让主播说的话", pitch: "讲解", now: "正在说", script: "脚本",
       health: "状态", queue: "队列", decisions: "筛选", recent: "最近回答", products: "商品",
       first: "优先回答", drop: "移除", save: "保存", idle: "（安静）", taken: "人工接管中",
       paused: "已暂停", late: "迟到帧", p50: "首帧中位数", p95: "p95", price: "价格",
       stock: "库存", voice: "语音", requests: "请求", fallbacks: "本地语音", broken_off: "中断",
       unplayable: "无法播放", breaker: "熔断", skipped: "已跳过", face: "口型",
       served: "服务器批次", local: "本地批次"},
};
const LANG = (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
const T = (key) => STRINGS[LANG][key] || STRINGS.en[key] || key;
let state = null;
// Unsaved price and stock edits by product id: a state push rebuilds the table, and an edit
// the operator has not saved yet must survive it (a click elsewhere blurs the field first).
const drafts = new Map();

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function voiceHealth(v) {
  // the voice's own figures: a TTS server's requests, fallbacks, broken-off sentences, breaker
  const figures = ["requests", "fallbacks", "broken_off", "unplayable"].filter((k) => k in v)
    .map((k) => `${T(k)} ${v[k]}`);
  const breaker = v.breaker && v.breaker !== "closed" ? ` (${T("breaker")} ${v.breaker})` : "";
  return el("li", `${T("voice")} ${v.name}: ${v.state}${breaker} · ${figures.join(" · ")}`,
    v.state === "up" ? "" : "bad");
}

function faceHealth(f) {
  // a face server (Triton): its state, and the batches it and the local stand-in rendered
  const breaker = f.breaker !== "closed" ? ` (${T("breaker")} ${f.breaker})` : "";
  return el("li", `${T("face")} ${f.name}: ${f.state}${breaker} · ${T("served")} ${f.remote_batches}` +
    ` · ${T("local")} ${f.local_batches}`, f.state === "up" ? "" : "bad");
}

function translate() {
  document.documentElement.lang = LANG === "zh" ? "zh-CN" : "en";
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = T(node.dataset.i18n);
  for (const node of document.querySelectorAll("[data-i18n-placeholder]")) {
    node.placeholder = T(node.dataset.i18nPlaceholder);
  }
}

async function act(action, body) {
  const status = document.getElementById("status");
  try {
    const resp = await fetch(`/api/${action}`, {method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify(body || {})});
    const answer = await resp.json();
    status.textContent = answer.done || answer.error || "";
    status.className = resp.ok ? "" : "bad";
    return resp.ok;
  } catch (err) {
    status.textContent = String(err);
    return false;
  }
}

function rows(id, items, cells) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren(...items.map((item) => {
    const tr = el("tr");
    if (item.id !== undefined) tr.dataset.id = item.id;
    for (const cell of cells(item)) tr.append(cell instanceof Node ? cell : el("td", cell));
    return tr;
  }));
}

function button(label, onclick, cls) {
  const td = el("td");
  const b = el("button", label, cls);
  b.addEventListener("click", onclick);
  td.append(b);
  return td;
}

function render(s) {
  state = s;
  const now = document.getElementById("now");
  now.replaceChildren();
  if (s.now) {
    if (s.now.question) now.append(el("div", `“${s.now.question}”`));
    for (const line of s.now.spoken) now.append(el("div", line));
    if (s.now.saying) now.append(el("div", s.now.saying, "saying"));
  } else {
    now.append(el("div", T("idle")));
  }
  const script = document.getElementById("script");
  script.replaceChildren();
  if (s.script) {
    script.append(el("div", `${s.script.segment}${s.script.paused ? " · " + T("paused") : ""}`));
    // segments the host cannot say now (a product gone from the catalog), and why
    for (const [segment, why] of Object.entries(s.script.skipped || {})) {
      script.append(el("div", `${T("skipped")} ${segment}: ${why}`, "skipped"));
    }
  }
  document.getElementById("autopilot").textContent = s.script && s.script.paused ? T("resume") : T("pause");
  const take = document.getElementById("takeover");
  take.textContent = s.taken_over ? T("handback") : T("takeover");
  take.classList.toggle("on", s.taken_over);
  const mode = document.getElementById("mode");
  mode.textContent = s.taken_over ? T("taken") : "";
  const lat = s.latency_ms;
  document.getElementById("latency").textContent =
    `${T("late")}: ${s.health.late_frames} · ${T("p50")}: ${lat.p50 === null ? "-" : lat.p50.toFixed(0) + " ms"}` +
    ` · ${T("p95")}: ${lat.p95 === null ? "-" : lat.p95.toFixed(0) + " ms"}`;
  const health = document.getElementById("health");
  health.replaceChildren(...[...s.health.sinks, ...s.health.sources].map(
    (x) => el("li", `${x.name}: ${x.state}`, x.state === "up" || x.state === "ended" ? "" : "bad")),
    voiceHealth(s.health.voice), ...(s.health.face ? [faceHealth(s.health.face)] : []));
  rows("queue", s.queue, (m) => [m.user ? `${m.user}: ${m.text}` : m.text,
    el("td", m.reason, "reason"), button(T("first"), () => act("first", {id: m.id})),
    button(T("drop"), () => act("drop", {id: m.id}))]);
  rows("decisions", s.decisions, (d) => [d.text, d.decision, el("td", d.reason, "reason")]);
  rows("recent", s.recent, (t) => [t.question || t.segment || t.kind, t.reply, t.outcome,
    t.first_frame_ms === null ? "" : `${t.first_frame_ms.toFixed(0)} ms`]);
  const select = document.getElementById("pitch-product");
  if (select.options.length !== s.products.length) {
    select.replaceChildren(...s.products.map((p) => {
      const o = el("option", LANG === "zh" ? p.name_zh : p.name);
      o.value = p.id;
      return o;
    }));
  }
  const editing = document.activeElement && document.activeElement.closest("#products");
  if (!editing) {
    rows("products", s.products, productCells);
    for (const tr of document.querySelectorAll("#products tbody tr")) {
      tr.classList.toggle("unsaved", drafts.has(tr.dataset.id));
    }
  }
}

function productCells(p) {
  const draft = drafts.get(p.id) || {};
  const field = (cls, value) => {
    const input = el("input");
    input.className = cls;
    input.value = draft[cls] ?? value;
    input.setAttribute("aria-label", T(cls));
    input.addEventListener("input", () => {
      drafts.set(p.id, {...drafts.get(p.id), [cls]: input.value});
      input.closest("tr").classList.add("unsaved");
    });
    return input;
  };
  const price = field("price", p.price);
  const stock = field("stock", p.stock);
  const cellP = el("td"); cellP.append(price, ` ${p.currency}`);
  const cellS = el("td"); cellS.append(stock);
  const save = button(T("save"), async () => {
    const saved = await act("product", {id: p.id, price: Number(price.value), stock: Number(stock.value)});
    if (saved) {
      drafts.delete(p.id);
      save.closest("tr").classList.remove("unsaved");
    }
  }, "save");
  return [LANG === "zh" ? p.name_zh : p.name, cellP, cellS, save];
}

function connect() {
  const conn = document.getElementById("conn");
  const events = new EventSource("/events");
  events.addEventListener("open", () => { conn.textContent = T("live"); conn.className = "badge ok"; });
  events.addEventListener("error", () => { conn.textContent = T("offline"); conn.className = "badge bad"; });
  events.addEventListener("state", (e) => render(JSON.parse(e.data)));
  events.addEventListener("preview", (e) => {
    document.getElementById("preview").src = `/preview.jpg?frame=${e.data}`;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  translate();
  document.getElementById("skip").addEventListener("click", () => act("skip"));
  document.getElementById("autopilot").addEventListener("click",
    () => act("autopilot", {on: Boolean(state && state.script && state.script.paused)}));
  document.getElementById("takeover").addEventListener("click",
    () => act("takeover", {on: !(state && state.taken_over)}));
  document.getElementById("say-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = document.getElementById("say-text");
    act("say", {text: input.value}).then(() => { input.value = ""; });
  });
  document.getElementById("pitch-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act("pitch", {product: document.getElementById("pitch-product").value});
  });
  connect();
});
