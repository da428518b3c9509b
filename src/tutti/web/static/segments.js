// The segment builder (Alpine.js): edits the rule tree, counts live (debounced), fills the tree from words.
(function () {
  const DEFAULTS = {
    attribute: { field: "city", op: "equals", value: "" },
    identity: { identity: "line_uid", present: true },
    reachable: { channel: "line", value: true },
    consent: { channel: "email", statuses: ["subscribed"], status0: "subscribed" },
    tag: { tag: "", op: "has" },
    event: { name: "Product Viewed", op: "at_least", times: 3, days: 30 },
    orders: { measure: "count", op: "gte", value: 1 },
    bought: { category: "", days: 90 },
    engagement: { op: "clicked_any", days: 60 },
    rfm: { dimension: "monetary", low: 5, high: 5 },
    segment: { op: "not_in", segment_id: null },
  };
  const NUMERIC = ["days", "times", "low", "high", "campaign_id", "segment_id"];
  const OPS = { equals: "=", not_equals: "≠", gt: ">", gte: "≥", lt: "<", lte: "≤", in: "in", not_in: "not in",
    contains: "contains", not_contains: "not contains", between: "between", before: "before", after: "after",
    within_last_days: "in the last … days", not_within_last_days: "not in the last … days", is_set: "is set", is_not_set: "is not set" };

  function clean(node, vocab) {
    if (node.kind === "group") {
      return { kind: "group", op: node.op || "and", negate: !!node.negate, children: (node.children || []).map((c) => clean(c, vocab)) };
    }
    const out = {};
    for (const [key, value] of Object.entries(node)) {
      if (value === "" || value === null || value === undefined || key === "valuesText" || key === "status0") continue;
      out[key] = NUMERIC.includes(key) && typeof value === "string" ? Number(value) : value;
    }
    if (node.kind === "attribute") {
      const type = vocab.attributes[node.field] || "string";
      if (["in", "not_in"].includes(node.op)) out.values = String(node.valuesText || "").split(",").map((v) => v.trim()).filter(Boolean)
        .map((v) => (type === "number" ? Number(v) : v));
      if (type === "number" && out.value !== undefined) out.value = Number(out.value);
      if (type === "boolean" && out.value !== undefined) out.value = ["true", "1", "yes", true].includes(out.value);
      if (type === "number" && out.low !== undefined) { out.low = Number(out.low); out.high = Number(out.high); }
      if (["is_set", "is_not_set", "within_last_days", "not_within_last_days"].includes(node.op)) delete out.value;
      if (!["within_last_days", "not_within_last_days"].includes(node.op)) delete out.days;
      delete out.type;
    }
    if (node.kind === "orders" && out.value !== undefined && node.measure !== "last_order_at") out.value = Number(out.value);
    if (node.kind === "orders" && ["is_set", "is_not_set", "within_last_days", "not_within_last_days"].includes(node.op)) delete out.value;
    if (node.kind === "tag" && node.op !== "applied_at_least") { delete out.times; delete out.days; }
    if (node.kind === "event" && !["at_least", "at_most"].includes(node.op)) delete out.times;
    if (node.kind === "engagement" && node.op === "clicked_any") delete out.campaign_id;
    return out;
  }

  window.segmentBuilder = function () {
    const data = JSON.parse(document.getElementById("segment-data").textContent);
    return {
      rules: data.rules, vocab: data.vocab, id: data.id, name: data.name, csrf: data.csrf,
      count: null, sample: [], error: "", loading: false, words: "", parsed: null, timer: null, seq: 0, lastSent: null,
      init() {
        this.$watch("rules", () => this.schedule(), { deep: true });
        this.refreshCount();
      },
      opLabel(op) { return OPS[op] || op; },
      post(url, body) {
        return fetch(url, { method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": this.csrf }, body: JSON.stringify(body) })
          .then((r) => r.json().then((j) => ({ ok: r.ok, body: j })));
      },
      payload() { return { version: 1, root: clean(this.rules.root, this.vocab) }; },
      schedule() { clearTimeout(this.timer); this.timer = setTimeout(() => this.refreshCount(), 400); },
      refreshCount() {
        // selects re-assign the same values while rendering: count only when the rules really changed
        const sent = JSON.stringify(this.payload());
        if (sent === this.lastSent) return;
        this.lastSent = sent;
        const seq = ++this.seq;
        this.loading = true;
        this.post("/segments/live/count", { rules: this.payload(), sample: true }).then(({ ok, body }) => {
          if (seq !== this.seq) return; // an older answer after a newer request: ignore it
          this.loading = false;
          if (ok) { this.count = body.count; this.sample = body.sample || []; this.error = ""; }
          else { this.count = null; this.sample = []; this.error = body.error ? body.error.message : data.labels.error; }
        }).catch((e) => { if (seq === this.seq) { this.loading = false; this.error = data.labels.error + " (" + e + ")"; } });
      },
      fresh(kind) { return Object.assign({ kind }, JSON.parse(JSON.stringify(DEFAULTS[kind]))); },
      addCondition(list) {
        const node = this.fresh("tag");
        node.tag = this.vocab.tags[0] || "";
        list.push(node);
      },
      addGroup(list) { list.push({ kind: "group", op: "or", negate: false, children: [] }); },
      maxDepth: data.max_depth,
      canNest(row) {
        // the schema counts the root as depth 1, so a group in row `row` is at row.depth + 2 and a group
        // added inside it at row.depth + 3, which must stay within max_depth
        return row.depth + 3 <= this.maxDepth;
      },
      rows() {
        // every node below the root, depth first, with the list that holds it (to remove it) and its depth
        const out = [];
        const walk = (group, depth, path) => group.children.forEach((node, index) => {
          const key = path + "." + index;
          out.push({ node, list: group.children, index, depth, key: key + ":" + node.kind });
          if (node.kind === "group") walk(node, depth + 1, key);
        });
        walk(this.rules.root, 0, "root");
        return out;
      },
      remove(list, i) { list.splice(i, 1); },
      resetKind(node) {
        const kind = node.kind;
        for (const key of Object.keys(node)) delete node[key];
        Object.assign(node, this.fresh(kind));
        if (kind === "tag") node.tag = this.vocab.tags[0] || "";
        if (kind === "bought") node.category = this.vocab.categories[0] || "";
        if (kind === "segment" && this.vocab.segments.length) node.segment_id = this.vocab.segments[0].id;
      },
      parse() {
        if (!this.words.trim()) return;
        this.post("/segments/live/parse", { text: this.words }).then(({ body }) => {
          this.parsed = body;
          if (body.rules) this.rules = body.rules; // shown in the builder: nothing is saved until Save
        });
      },
      save() {
        this.post("/segments/live/save", { id: this.id, name: this.name, rules: this.payload() }).then(({ ok, body }) => {
          if (ok) window.location.href = body.url;
          else this.error = body.error ? body.error.message : data.labels.error;
        });
      },
    };
  };
})();
