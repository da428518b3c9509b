// Tutti chat widget. Embed with one tag:
//   <script src="https://tutti.example/widget.js" data-workspace="wk_…" async></script>
// optional, for signed-in customers: data-user-id="42" data-user-hash="<HMAC-SHA256 hex>" data-name="…"
// Vanilla JS in a shadow root (the shop's CSS cannot reach in, ours cannot leak out). Served minified:
// no line may start with // inside a string, and statements end with semicolons.
(function () {
"use strict";
var tag = document.currentScript || document.querySelector("script[data-workspace][src*='widget.js']");
if (!tag || window.__tuttiWidget) return;
window.__tuttiWidget = 1;
var key = tag.getAttribute("data-workspace");
var base = new URL(tag.src, location.href).origin;
var api = base + "/widget/api/" + encodeURIComponent(key);
var lang = (document.documentElement.lang || navigator.language || "zh-TW").toLowerCase();
var zh = lang.indexOf("zh") === 0 || lang.indexOf("en") !== 0 && (navigator.language || "").toLowerCase().indexOf("zh") === 0;
var T = zh ? {
  open: "開啟客服對話", close: "關閉", send: "送出", placeholder: "輸入訊息…", typing: "正在輸入…",
  offline: "連線中斷,正在重新連線…", failed: "未送出,點此重試", refused: "無法開始對話", source: "來源",
  agent: "客服", bot: "小幫手", sticker: "[貼圖]", image: "[圖片]"
} : {
  open: "Open chat", close: "Close", send: "Send", placeholder: "Type a message…", typing: "typing…",
  offline: "Connection lost, reconnecting…", failed: "Not sent — tap to retry", refused: "Chat unavailable", source: "Source",
  agent: "Agent", bot: "Assistant", sticker: "[sticker]", image: "[image]"
};
var store = window.localStorage;
var anonKey = "tutti_anon_" + key;
var anon = null;
try { anon = store.getItem(anonKey); } catch (e) { anon = null; }
if (!anon || !/^[A-Za-z0-9_-]{16,64}$/.test(anon)) {
  anon = (window.crypto && crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2) + Date.now()).replace(/[^A-Za-z0-9]/g, "");
  try { store.setItem(anonKey, anon); } catch (e) { /* private mode: a new visitor per page */ }
}
var state = { token: null, conversation: null, last: 0, seen: {}, source: null, backoff: 1000, timer: null, pending: 0, ready: null };

function post(path, body) {
  return fetch(api + path, { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "text/plain" }, credentials: "omit" })
    .then(function (r) { return r.json().then(function (j) { if (!r.ok) { var e = new Error((j.error || {}).message || r.status); e.status = r.status; throw e; } return j; }); });
}

var host = document.createElement("div");
host.id = "tutti-widget";
var root = host.attachShadow({ mode: "open" });
root.innerHTML = "<style>" +
  ":host{all:initial}*{box-sizing:border-box;font-family:system-ui,-apple-system,'Noto Sans TC','PingFang TC',sans-serif}" +
  ".l{position:fixed;right:20px;bottom:20px;width:56px;height:56px;border-radius:50%;border:0;background:var(--c);color:#fff;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25);z-index:2147483646;display:flex;align-items:center;justify-content:center}" +
  ".p{position:fixed;right:20px;bottom:88px;width:360px;max-width:calc(100vw - 24px);height:520px;max-height:calc(100vh - 110px);background:#fff;border-radius:14px;box-shadow:0 8px 30px rgba(0,0,0,.25);display:none;flex-direction:column;overflow:hidden;z-index:2147483647;color:#111;font-size:14px}" +
  ".p.o{display:flex}.h{background:var(--c);color:#fff;padding:12px 14px;display:flex;align-items:center;font-weight:600}.h span{flex:1}" +
  ".h button{background:none;border:0;color:#fff;font-size:20px;cursor:pointer;line-height:1}" +
  ".m{flex:1;overflow-y:auto;padding:12px;background:#f7f7f9;display:flex;flex-direction:column;gap:6px}" +
  ".b{max-width:80%;padding:8px 11px;border-radius:12px;white-space:pre-wrap;word-wrap:break-word;line-height:1.45}" +
  ".b.customer{align-self:flex-end;background:var(--c);color:#fff;border-bottom-right-radius:4px}" +
  ".b.bot,.b.agent,.b.greet{align-self:flex-start;background:#fff;border:1px solid #e5e7eb;border-bottom-left-radius:4px}" +
  ".b.sending{opacity:.6}.b.failed{background:#fee2e2;color:#991b1b;cursor:pointer}" +
  ".w{font-size:11px;color:#6b7280;margin-bottom:2px}.s{font-size:11px;color:#6b7280;margin-top:4px}" +
  ".b img{max-width:100%;border-radius:8px}.q{display:flex;flex-wrap:wrap;gap:4px;align-self:flex-start}" +
  ".q button{border:1px solid var(--c);color:var(--c);background:#fff;border-radius:14px;padding:4px 10px;cursor:pointer;font-size:13px}" +
  ".t{font-size:12px;color:#6b7280;padding:0 14px 4px;min-height:16px}.n{font-size:12px;color:#92400e;background:#fef3c7;padding:4px 14px;display:none}" +
  ".f{display:flex;border-top:1px solid #e5e7eb}.f textarea{flex:1;border:0;padding:10px;resize:none;font-size:14px;height:44px;outline:none}" +
  ".f button{border:0;background:none;color:var(--c);font-weight:600;padding:0 14px;cursor:pointer}" +
  "</style>" +
  "<button class='l' part='launcher' aria-label='" + T.open + "'><svg width='26' height='26' viewBox='0 0 24 24' fill='none' stroke='currentColor' stroke-width='2'><path d='M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z'/></svg></button>" +
  "<div class='p' role='dialog'><div class='h'><span></span><button class='x' aria-label='" + T.close + "'>×</button></div>" +
  "<div class='n'>" + T.offline + "</div><div class='m' aria-live='polite'></div><div class='t'></div>" +
  "<form class='f'><textarea rows='1' placeholder='" + T.placeholder + "' aria-label='" + T.placeholder + "'></textarea><button type='submit'>" + T.send + "</button></form></div>";
var $ = function (s) { return root.querySelector(s); };
var panel = $(".p"), list = $(".m"), input = $("textarea"), typing = $(".t"), notice = $(".n");
host.style.setProperty("--c", "#4f46e5");

function scroll() { list.scrollTop = list.scrollHeight; }
function el(tagName, cls, text) { var e = document.createElement(tagName); if (cls) e.className = cls; if (text != null) e.textContent = text; return e; }

function render(msg, node) {
  var b = node || el("div");
  b.className = "b " + msg.author;
  b.textContent = "";
  if (msg.author === "agent" || msg.author === "bot") b.appendChild(el("div", "w", msg.author === "agent" ? (msg.agent || T.agent) : T.bot));
  var p = msg.payload || {};
  if (msg.kind === "image" && (p.url || p.originalContentUrl)) {
    var img = el("img"); img.src = p.url || p.originalContentUrl; img.alt = T.image; b.appendChild(img);
  } else {
    b.appendChild(document.createTextNode(msg.text || (msg.kind === "sticker" ? T.sticker : msg.kind === "image" ? T.image : p.label || "")));
  }
  var src = p.source || (p.sources && p.sources[0]);
  var srcName = src && (src.title || src.name || String(src));
  if (srcName && (msg.text || "").indexOf(srcName) < 0) b.appendChild(el("div", "s", T.source + ": " + srcName));
  b.setAttribute("data-id", msg.id || "");
  return b;
}

function add(msg) {
  if (msg.id) { if (state.seen[msg.id]) return; state.seen[msg.id] = 1; state.last = Math.max(state.last, msg.id); }
  var old = list.querySelector(".q"); if (old) old.remove();
  list.appendChild(render(msg));
  var q = (msg.payload || {}).quick_replies || ((msg.payload || {}).csat ? ["1", "2", "3", "4", "5"] : null);
  if (q && q.length && msg.author !== "customer") {
    var box = el("div", "q");
    q.forEach(function (label) { var btn = el("button", null, label.label || label); btn.type = "button"; btn.onclick = function () { send(label.text || label.label || label); }; box.appendChild(btn); });
    list.appendChild(box);
  }
  if (msg.author !== "customer") { state.pending = 0; typing.textContent = ""; }
  scroll();
}

function connect() {
  if (!state.conversation || !state.token) return;
  if (state.source) state.source.close();
  var es = new EventSource(api + "/stream?token=" + encodeURIComponent(state.token) + "&conversation=" + state.conversation + "&after=" + state.last);
  state.source = es;
  es.addEventListener("open", function () { state.backoff = 1000; notice.style.display = "none"; });
  es.addEventListener("message", function (e) { try { add(JSON.parse(e.data)); } catch (x) { /* ignore a malformed frame */ } });
  es.addEventListener("typing", function () { typing.textContent = T.typing; clearTimeout(state.tt); state.tt = setTimeout(function () { if (!state.pending) typing.textContent = ""; }, 4000); });
  es.addEventListener("error", function () {
    notice.style.display = "block";
    if (es.readyState === 2) {
      es.close();
      clearTimeout(state.timer);
      state.timer = setTimeout(function () { start().then(connect, connect); }, state.backoff);
      state.backoff = Math.min(state.backoff * 2, 30000);
    }
  });
}

function start() {
  var body = { anonymous_id: anon };
  ["user-id", "user-hash", "name", "email"].forEach(function (a) { var v = tag.getAttribute("data-" + a); if (v) body[a.replace("-", "_")] = v; });
  state.ready = post("/session", body).then(function (s) {
    state.token = s.token;
    var look = s.look || {};
    if (look.color) host.style.setProperty("--c", look.color);
    $(".h span").textContent = (look.title || {})[zh ? "zh-TW" : "en"] || "";
    if (!list.querySelector(".greet")) list.insertBefore(el("div", "b greet", (look.greeting || {})[zh ? "zh-TW" : "en"] || ""), list.firstChild);
    (s.messages || []).forEach(add);
    if (s.conversation_id && s.conversation_id !== state.conversation) { state.conversation = s.conversation_id; }
    return s;
  });
  return state.ready;
}

function send(text, node) {
  text = (text || "").trim();
  if (!text) return;
  var cid = "c" + Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
  var bubble = node || list.appendChild(render({ author: "customer", text: text }));
  bubble.className = "b customer sending";
  bubble.onclick = null;
  scroll();
  state.pending = 1;
  typing.textContent = T.typing;
  (state.ready || start()).then(function () {
    return post("/messages", { token: state.token, text: text, client_id: cid });
  }).then(function (r) {
    var m = r.message;
    bubble.className = "b customer";
    if (!state.seen[m.id]) { state.seen[m.id] = 1; state.last = Math.max(state.last, m.id); bubble.setAttribute("data-id", m.id); } else { bubble.remove(); }
    if (r.conversation_id !== state.conversation || !state.source || state.source.readyState === 2) { state.conversation = r.conversation_id; connect(); }
    setTimeout(function () { if (state.pending) { state.pending = 0; typing.textContent = ""; } }, 15000);
  }, function (e) {
    state.pending = 0;
    typing.textContent = "";
    bubble.className = "b customer failed";
    bubble.title = T.failed + (e && e.message ? " (" + e.message + ")" : "");
    bubble.onclick = function () { send(text, bubble); };
    if (e && e.status === 401) { state.ready = null; }
  });
}

$(".l").onclick = function () { toggle(!panel.classList.contains("o")); };
$(".x").onclick = function () { toggle(false); };
$("form").onsubmit = function (e) { e.preventDefault(); var v = input.value; input.value = ""; send(v); };
input.onkeydown = function (e) { if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("form").onsubmit(e); } };
function toggle(open) {
  panel.classList.toggle("o", open);
  if (open) { input.focus(); scroll(); if (!state.source && state.conversation) connect(); }
}

function mount() {
  document.body.appendChild(host);
  start().then(function (s) { if (s.conversation_id) connect(); }, function (e) {
    state.ready = null;
    if (e && e.status === 403) { host.title = T.refused + ": " + e.message; $(".l").disabled = true; $(".l").style.opacity = ".4"; }
  });
}
window.TuttiWidget = { open: function () { toggle(true); }, close: function () { toggle(false); }, send: function (t) { send(t); } };
if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
