/* The inbox page: the reply box (canned responses after "/"), suggestions, and live updates over SSE.
   Loaded in <head> without defer so Alpine (deferred) finds replyBox when it starts. */
(function () {
  "use strict";

  window.replyBox = function (canned) {
    return {
      text: "",
      note: false,
      get matches() {
        var m = /^\/(\S*)$/.exec(this.text);
        if (!m) return [];
        var prefix = m[1].toLowerCase();
        return canned.filter(function (c) { return c.shortcut.indexOf(prefix) === 0 || c.name.toLowerCase().indexOf(prefix) >= 0; }).slice(0, 8);
      },
      typed: function (conversationId) {
        // tell the customer someone is typing, at most every 3 s
        var now = Date.now();
        if (this.note || now - (this.lastTyping || 0) < 3000) return;
        this.lastTyping = now;
        htmx.ajax("POST", "/inbox/c/" + conversationId + "/typing", { swap: "none" });
      },
      pick: function (item) { this.text = item.text; var box = document.querySelector("#reply-form textarea"); if (box) box.focus(); }
    };
  };

  window.tuttiInbox = {
    use: function (text) {
      var form = document.getElementById("reply-form");
      if (!form || !window.Alpine) return;
      window.Alpine.$data(form).text = text;
      form.querySelector("textarea").focus();
    }
  };

  function start() {
    var root = document.getElementById("inbox");
    if (!root || !window.EventSource) return;
    var current = root.dataset.current;
    var listTimer = null;
    var threadTimer = null;

    function refreshList() {
      clearTimeout(listTimer);
      listTimer = setTimeout(function () {
        // do not wipe a selection someone is making for a bulk action
        if (document.querySelector("#conversation-list input[name=ids]:checked")) return;
        var url = "/inbox/list?queue=" + encodeURIComponent(root.dataset.queue) + "&q=" + encodeURIComponent(root.dataset.q || "") + (current ? "&c=" + current : "");
        htmx.ajax("GET", url, { target: "#conversation-list", swap: "innerHTML" });
      }, 300);
    }

    function refreshThread() {
      if (!current || !document.getElementById("thread")) return;
      clearTimeout(threadTimer);
      threadTimer = setTimeout(function () {
        htmx.ajax("GET", "/inbox/c/" + current + "/messages", { target: "#thread", swap: "innerHTML" });
      }, 100);
    }

    var opened = false;
    var source = new EventSource("/inbox/events");
    source.onopen = function () {
      root.classList.remove("offline");
      if (opened) { refreshList(); refreshThread(); }  // events missed while away: reload what is shown
      opened = true;
    };
    source.onerror = function () { root.classList.add("offline"); };
    source.onmessage = function (e) {
      var event;
      try { event = JSON.parse(e.data); } catch (x) { return; }
      if (current && String(event.conversation_id) === String(current)) refreshThread();
      refreshList();
    };
    document.body.addEventListener("htmx:afterSwap", function (e) {
      if (e.detail.target && e.detail.target.id === "thread") {
        var list = document.getElementById("messages");
        if (list) list.scrollTop = list.scrollHeight;
      }
    });
    var list = document.getElementById("messages");
    if (list) list.scrollTop = list.scrollHeight;
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
