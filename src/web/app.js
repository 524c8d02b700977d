// The status page: reads /api/status (nothing private), renders one row per monitor, refreshes
// every 30 s without reloading. No framework, no build step, no network beyond this daemon.
"use strict";

const I18N = {
  en: {
    title: "LLM API status", provider: "Provider", service: "Service", sort: "Sort", all: "All",
    sort_config: "Config order", sort_uptime: "Uptime (lowest first)", sort_latency: "Latency (slowest first)",
    green: "Normal", yellow: "Slow / limited", red: "Unavailable", nodata: "No data", maintenance: "Maintenance",
    uptime: "Uptime", latency: "Latency", ttft: "TTFT", cost: "Cost", monitors: "monitors", updated: "updated",
    availability: "availability", probes: "probes", no_probe: "no probe yet", utc: "UTC",
    error: "Could not load the status", lang_switch: "中文",
    node: "Node", combined: "All nodes (combined)", stale: "stale",
    models: "Models", rule_any: "red if any is red", rule_majority: "red if most are red", rule_all: "red if all are red",
    all_up: "All systems operational", down_of: "{n} of {m} down", degraded_of: "{n} slow or limited",
    worst: "Worst", details_of: "Details", close: "Close", maintenance_now: "Maintenance now",
    maintenance_next: "Planned maintenance", until: "until", no_data: "No probes",
    group_summary: "{n} monitors", group_summary_one: "1 monitor", group_down: "{n} down", group_up: "all up",
    incidents: "Incidents", no_incidents: "No incidents in this period", ongoing: "ongoing", since: "since",
    subscribe: "Subscribe", reasons_seen: "Reasons", red_probes: "{n} failed probes", more_incidents: "and {n} more", more_than_incidents: "and over {n} more", loading: "Loading…", incidents_error: "Could not load the incidents",
    reasons: {
      ok: "OK", slow: "Slow", rate_limited: "Rate limited", content_mismatch: "Bad content",
      auth_error: "Auth error", client_error: "Client error", server_error: "Server error",
      timeout: "Timeout", network_error: "Network error", wrong_answer: "Wrong answer",
      model_mismatch: "Model mismatch", stream_incomplete: "Stream cut off", upstream_error: "Upstream error",
      prompt_inflated: "Prompt inflated", usage_inflated: "Usage inflated", buffered_stream: "Buffered stream", proxy_error: "Proxy error",
    },
  },
  zh: {
    title: "LLM 接口状态", provider: "服务商", service: "服务", sort: "排序", all: "全部",
    sort_config: "配置顺序", sort_uptime: "可用率（低在前）", sort_latency: "延迟（高在前）",
    green: "正常", yellow: "缓慢 / 限流", red: "不可用", nodata: "无数据", maintenance: "维护中",
    uptime: "可用率", latency: "延迟", ttft: "首字延迟", cost: "费用", monitors: "个监控", updated: "更新于",
    availability: "可用率", probes: "次探测", no_probe: "尚未探测", utc: "UTC",
    error: "无法加载状态", lang_switch: "English",
    node: "节点", combined: "全部节点（综合）", stale: "失联",
    models: "模型", rule_any: "任一不可用即不可用", rule_majority: "多数不可用即不可用", rule_all: "全部不可用才不可用",
    all_up: "所有服务运行正常", down_of: "{m} 个中 {n} 个不可用", degraded_of: "{n} 个缓慢或限流",
    worst: "最差", details_of: "详情", close: "关闭", maintenance_now: "正在维护",
    maintenance_next: "计划维护", until: "至", no_data: "无探测",
    group_summary: "{n} 个监控", group_summary_one: "1 个监控", group_down: "{n} 个不可用", group_up: "全部正常",
    incidents: "故障记录", no_incidents: "此期间无故障", ongoing: "进行中", since: "开始于",
    subscribe: "订阅", reasons_seen: "原因", red_probes: "{n} 次失败探测", more_incidents: "另有 {n} 个", more_than_incidents: "另有超过 {n} 个", loading: "加载中…", incidents_error: "无法加载故障记录",
    reasons: {
      ok: "正常", slow: "缓慢", rate_limited: "限流", content_mismatch: "内容异常",
      auth_error: "鉴权失败", client_error: "请求错误", server_error: "服务端错误",
      timeout: "超时", network_error: "网络错误", wrong_answer: "答案错误",
      model_mismatch: "模型不符", stream_incomplete: "流中断", upstream_error: "上游错误",
      prompt_inflated: "提示词注入", usage_inflated: "用量虚报", buffered_stream: "伪流式", proxy_error: "代理错误",
    },
  },
};

// What each setting may be, from a URL, a saved choice or the browser: anything else falls
// back (an unknown value is never used, nor saved).
const CHOICES = {
  period: (v) => (["24h", "7d", "30d"].includes(v) ? v : null),
  // "zh", "zh-CN", "zh-Hans", "zh-TW"...: the one Chinese the page has; "en-GB": English.
  lang: (v) => (/^zh\b/i.test(v || "") ? "zh" : /^en\b/i.test(v || "") ? "en" : null),
  theme: (v) => (["light", "dark"].includes(v) ? v : null),
};
const saved = (key, fallback) => {
  const choose = CHOICES[key];
  let stored = null;
  try { stored = localStorage.getItem("llm-monitor." + key); } catch (_) { /* storage blocked */ }
  const asked = new URLSearchParams(location.search).get(key);
  // `?lang=` of a language the page does not have: English (zh-* is its Chinese).
  if (key === "lang" && asked && choose(asked) === null) return "en";
  return choose(asked) ?? choose(stored) ?? choose(fallback) ?? fallback;
};
const state = {
  period: saved("period", "24h"),
  lang: saved("lang", CHOICES.lang(navigator.language) ?? "en"),
  theme: saved("theme", matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"),
  provider: "", service: "", sort: "config", node: "", nodes: [], open: null, detail: null, openMonitor: null, openAt: null, refocus: null,
  // `page:` of the config (title, description, logo, footer, group order, hidden patterns).
  page: { groups: [], hidden: [], monitor_groups: [] },
  collapsed: new Set(),
  embed: new URLSearchParams(location.search).get("embed") === "1",
  data: null, generatedAt: null,
};
const remember = (key) => { try { localStorage.setItem("llm-monitor." + key, state[key]); } catch (_) { /* storage blocked */ } };
const t = (key) => (I18N[state.lang] ?? I18N.en)[key] ?? I18N.en[key] ?? key;
const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const statusClass = (s) => (s === 0 || s === 1 || s === 2 ? "s" + s : s === -2 ? "sm" : "sn");
const pct = (v) => (v < 0 ? "—" : v.toFixed(2) + "%");
const ms = (v) => (v === null || v === undefined ? "—" : Math.round(v) + " ms");
const fill = (text, values) => text.replace(/\{(\w+)\}/g, (_, k) => String(values[k]));
// Times are UTC everywhere on the page, and say so.
// Dates in the page's language ("Nov 27, 2026", "2026年11月27日"); times as 24-hour HH:MM.
const locale = () => (state.lang === "zh" ? "zh-CN" : "en-US");
const utcDate = (unix) =>
  new Intl.DateTimeFormat(locale(), { timeZone: "UTC", year: "numeric", month: "short", day: "numeric" }).format(new Date(unix * 1000));
const utcTime = (unix, seconds) =>
  new Intl.DateTimeFormat(locale(), { timeZone: "UTC", hour: "2-digit", minute: "2-digit", second: seconds ? "2-digit" : undefined, hourCycle: "h23" })
    .format(new Date(unix * 1000));

// A bucket's shade, by how much of it was available (the README lists the thresholds): only a
// bucket with every probe green is the 100 % colour, however the percentage rounds.
function shade(bucket) {
  if (bucket.status === -2) return "sm";
  if (bucket.status === -1 || bucket.availability < 0) return "sn";
  if (bucket.status === 1) return "a100";
  const a = bucket.availability;
  if (a >= 99) return "a99";
  if (a >= 95) return "a95";
  if (a >= 50) return "a50";
  return "a0";
}

function bucketRange(bucket) {
  if (state.period === "24h") {
    const end = bucket.timestamp + 3600;
    return `${utcDate(bucket.timestamp)} ${utcTime(bucket.timestamp)}–${utcTime(end)} ${t("utc")}`;
  }
  return `${utcDate(bucket.timestamp)} ${t("utc")}`;
}

const statusName = (s) => (s === 1 ? t("green") : s === 2 ? t("yellow") : s === 0 ? t("red") : s === -2 ? t("maintenance") : t("nodata"));

// The lines of a bucket's details (also its accessible name, joined).
// The lines of a bucket's details: from the page's compact data (range, availability, worst
// status: also each bucket's accessible name), or all of them from a monitor's full answer.
function bucketLines(bucket) {
  const lines = [bucketRange(bucket)];
  if (bucket.status === -1) {
    lines.push(t("no_data"));
    return lines;
  }
  lines.push(`${t("availability")}: ${pct(bucket.availability)}`);
  lines.push(`${t("worst")}: ${statusName(bucket.status)}`);
  const c = bucket.counts;
  if (!c) return lines;
  lines.push(`${t("green")} ${c.green} · ${t("yellow")} ${c.yellow} · ${t("red")} ${c.red}`);
  if (c.maintenance > 0) lines.push(`${t("maintenance")}: ${c.maintenance}`);
  if (c.green + c.yellow > 0) {
    let latency = `${t("latency")}: ${ms(bucket.latency)}`;
    if (bucket.latency_p95 !== null) latency += ` (p50 ${ms(bucket.latency_p50)}, p95 ${ms(bucket.latency_p95)})`;
    lines.push(latency);
  }
  if (bucket.ttft_p50 !== null) lines.push(`${t("ttft")}: p50 ${ms(bucket.ttft_p50)}, p95 ${ms(bucket.ttft_p95)}`);
  const reasons = reasonList(bucket.reasons);
  if (reasons) lines.push(`${t("reasons_seen")}: ${reasons}`);
  if (bucket.cost_usd !== null && bucket.cost_usd !== undefined) lines.push(`${t("cost")}: ${usd(bucket.cost_usd)}`);
  return lines;
}

// USD with the digits a probe's cost needs: "$12.34", "$0.0123", "$0.000045".
const usd = (v) => "$" + (v >= 1 ? v.toFixed(2) : v >= 0.01 ? v.toFixed(4) : v.toFixed(6));

// `{"server_error": 3, "timeout": 1}` as "Server error ×3, Timeout ×1", most frequent first.
function reasonList(reasons) {
  return Object.entries(reasons || {})
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([r, n]) => `${(t("reasons") || {})[r] || r} ×${n}`)
    .join(", ");
}

const duration = (s) => (s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min` : `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`);

// The period's incidents, newest first, of the monitors the page shows: the newest 50.
const SHOWN_INCIDENTS = 50;
function incidentList() {
  if (state.incidentsFor !== state.period + "|" + state.node) {
    // Not loaded (yet, or it failed): never "no incidents" for what was not read.
    const note = state.incidentsFailed === state.period + "|" + state.node ? t("incidents_error") : t("loading");
    $("incident-list").replaceChildren(el("li", "more", note));
    return;
  }
  const list = (state.incidents || []).filter((i) => !state.page.hidden.some((p) => matches(p, i)));
  const items = list.slice(0, SHOWN_INCIDENTS).map((i) => {
    const li = el("li", i.ongoing ? "ongoing" : "");
    li.dataset.key = monitorKey(i);
    li.append(el("strong", "", `${i.provider} / ${i.service}${i.channel ? " / " + i.channel : ""}`), " ");
    const when = i.ongoing
      ? `${t("ongoing")}, ${t("since")} ${utcDate(i.start)} ${utcTime(i.start)} ${t("utc")} (${duration(i.duration_s)})`
      : `${utcDate(i.start)} ${utcTime(i.start)}–${utcDate(i.end) === utcDate(i.start) ? "" : utcDate(i.end) + " "}${utcTime(i.end)} ${t("utc")} (${duration(i.duration_s)})`;
    li.append(el("span", "when", when));
    const reasons = reasonList(i.reasons);
    li.append(el("div", "", `${fill(t("red_probes"), { n: i.red_probes })}${reasons ? " · " + reasons : ""}`));
    return li;
  });
  if (list.length > SHOWN_INCIDENTS || state.incidentsTruncated) {
    const more = fill(t(state.incidentsTruncated ? "more_than_incidents" : "more_incidents"), { n: list.length - SHOWN_INCIDENTS });
    items.push(el("li", "more", more));
  }
  if (items.length === 0) items.push(el("li", "none", t("no_incidents")));
  $("incident-list").replaceChildren(...items);
}

function applyStaticTexts() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  document.documentElement.dataset.theme = state.theme;
  document.querySelectorAll("[data-i18n]").forEach((node) => { node.textContent = t(node.dataset.i18n); });
  const page = state.page;
  const title = page.title || t("title");
  $("title").textContent = title;
  document.title = title;
  $("description").textContent = page.description || "";
  $("description").hidden = !page.description;
  $("page-footer").textContent = page.footer || "";
  $("page-footer").hidden = !page.footer;
  if (page.logo_url && $("logo").getAttribute("src") !== page.logo_url) $("logo").setAttribute("src", page.logo_url);
  $("logo").hidden = !page.logo_url;
  document.body.classList.toggle("embed", state.embed);
  $("lang").textContent = t("lang_switch");
  document.querySelectorAll(".period").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.period === state.period)));
}

function fillSelect(select, values, current) {
  const keep = select.value || current;
  while (select.options.length > 1) select.remove(1);
  values.forEach((v) => select.add(new Option(v, v)));
  select.value = values.includes(keep) ? keep : "";
}

function sorted(monitors) {
  const list = monitors.slice();
  if (state.sort === "uptime") list.sort((a, b) => (a.uptime < 0 ? 101 : a.uptime) - (b.uptime < 0 ? 101 : b.uptime));
  if (state.sort === "latency") {
    const lat = (m) => (m.current_status ? m.current_status.latency : -1);
    list.sort((a, b) => lat(b) - lat(a));
  }
  return list;
}

const monitorKey = (m) => `${m.provider}/${m.service}/${m.channel || ""}`;
// A bucket of the view on screen (the period and node are part of it: 00:00 starts an hour and
// a day alike).
const bucketId = (m, timestamp) => `${state.period}|${state.node}|${monitorKey(m)}@${timestamp}`;
const closeDetails = () => { state.refocus = state.open; state.open = null; state.detail = null; render(); };

// The open bucket's details under its bar, or nothing.
function details(m, bucket) {
  const box = el("div", "details");
  box.setAttribute("role", "region");
  box.setAttribute("aria-label", `${t("details_of")}: ${m.provider} / ${m.service}`);
  const list = el("ul");
  bucketLines(bucket).forEach((line) => list.append(el("li", null, line)));
  const close = el("button", "close", "×");
  close.type = "button";
  close.setAttribute("aria-label", t("close"));
  close.addEventListener("click", closeDetails);
  box.addEventListener("keydown", (e) => { if (e.key === "Escape") closeDetails(); });
  box.append(close, list);
  return box;
}

// Opening a bucket asks for that monitor's full answer (counts, latencies, TTFT), a few KB;
// the details show when it comes, and are asked again at each refresh while open.
async function openBucket(m, bucket) {
  const id = bucketId(m, bucket.timestamp);
  if (state.open === id) {
    closeDetails();
    return;
  }
  state.open = id;
  state.openMonitor = m;
  state.openAt = bucket.timestamp;
  render();
  await fetchDetail();
}

async function fetchDetail() {
  const [id, m, at] = [state.open, state.openMonitor, state.openAt];
  if (!id) return;
  const q = new URLSearchParams({ period: state.period, provider: m.provider, service: m.service, channel: m.channel || "" });
  if (state.node) q.set("node", state.node);
  try {
    const response = await fetch(`/api/status?${q}`, { cache: "no-cache" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const body = await response.json();
    const full = (body.data[0]?.timeline || []).find((b) => b.timestamp === at);
    // Only if the same bucket of the same view is still open.
    if (full && state.open === id) {
      state.detail = { id, bucket: full };
      render();
    }
  } catch (e) {
    $("error").textContent = `${t("error")}: ${e.message}`;
    $("error").hidden = false;
  }
}

// Arrow keys move along a bar (one bucket of it is in the Tab order); Enter and Space are the
// button's own click.
function barKeys(event) {
  const buckets = [...event.currentTarget.querySelectorAll(".bucket")];
  const i = buckets.indexOf(document.activeElement);
  if (i < 0) return;
  const to = { ArrowLeft: i - 1, ArrowRight: i + 1, Home: 0, End: buckets.length - 1 }[event.key];
  if (to === undefined) {
    if (event.key === "Escape" && state.open) closeDetails();
    return;
  }
  event.preventDefault();
  const next = buckets[Math.max(0, Math.min(buckets.length - 1, to))];
  buckets.forEach((b) => b.setAttribute("tabindex", b === next ? "0" : "-1"));
  next.focus();
}

function row(m) {
  const current = m.current_status;
  const status = current ? current.status : -1;
  const node = el("div", "row monitor-row");
  node.dataset.provider = m.provider;
  node.dataset.service = m.service;
  node.dataset.status = String(status);
  node.dataset.uptime = String(m.uptime);
  node.dataset.key = monitorKey(m);

  const head = el("div", "head");
  const name = el("div", "name", `${m.provider} / ${m.service}`);
  if (m.channel) name.append(el("span", "channel", ` / ${m.channel}`));
  const stateBox = el("div", "state");
  stateBox.append(el("i", "dot status-dot " + statusClass(status)));
  stateBox.append(el("span", "reason", current ? t("reasons")[current.reason] || current.reason : t("no_probe")));
  const figures = el("div", "figures");
  const fig = (label, value, cls) => {
    const span = el("span", cls, label + " ");
    span.append(el("b", null, value));
    return span;
  };
  // A failed probe measured nothing worth showing.
  if (current && status !== 0) figures.append(fig(t("latency"), ms(current.latency), "latency"));
  if (current && status !== 0 && current.ttft !== undefined) figures.append(fig(t("ttft"), ms(current.ttft), "ttft"));
  figures.append(fig(t("uptime"), pct(m.uptime), "uptime"));
  // What the period's probes cost, when the monitor's model has a price.
  if (m.cost_usd !== null && m.cost_usd !== undefined) figures.append(fig(t("cost"), usd(m.cost_usd), "cost"));
  head.append(name, stateBox, figures);
  node.append(head);
  // Why it is red, as the daemon stored it (redacted before it was stored).
  if (current && status === 0 && current.detail) node.append(el("div", "red-detail", current.detail));

  const bar = el("div", "bar");
  bar.setAttribute("role", "group");
  bar.setAttribute("aria-label", `${m.provider} / ${m.service}`);
  let openBucketData = null;
  m.timeline.forEach((bucket, i) => {
    const id = bucketId(m, bucket.timestamp);
    const b = el("button", "bucket " + shade(bucket));
    b.type = "button";
    b.dataset.status = String(bucket.status);
    b.dataset.availability = String(bucket.availability);
    b.dataset.timestamp = String(bucket.timestamp);
    b.setAttribute("aria-label", bucketLines(bucket).join(", "));
    const open = state.open === id;
    if (open && state.detail && state.detail.id === id) openBucketData = state.detail.bucket;
    b.setAttribute("aria-expanded", String(open));
    // One bucket of a bar is in the Tab order: the open one, else the newest.
    const openHere = m.timeline.some((x) => bucketId(m, x.timestamp) === state.open);
    const inTabOrder = openHere ? open : i === m.timeline.length - 1;
    b.setAttribute("tabindex", inTabOrder ? "0" : "-1");
    b.addEventListener("click", () => openBucket(m, bucket));
    bar.append(b);
  });
  bar.addEventListener("keydown", barKeys);
  const ticks = el("div", "ticks");
  if (m.timeline.length) {
    const label = (bucket) => (state.period === "24h"
      ? `${utcDate(bucket.timestamp)} ${utcTime(bucket.timestamp)} ${t("utc")}` : `${utcDate(bucket.timestamp)} ${t("utc")}`);
    ticks.append(el("span", null, label(m.timeline[0])), el("span", null, label(m.timeline[m.timeline.length - 1])));
  }
  node.append(bar, ticks);
  if (openBucketData) node.append(details(m, openBucketData));
  // Several probing nodes: each one's own view, under the combined one.
  const names = Object.keys(m.nodes || {});
  if (!state.node && names.length > 1) {
    const line = el("div", "nodes");
    names.forEach((name) => {
      const part = m.nodes[name];
      const s = part.stale || !part.current_status ? -1 : part.current_status.status;
      const chip = el("span", "node-chip");
      chip.dataset.node = name;
      chip.dataset.status = String(s);
      chip.dataset.stale = String(part.stale);
      chip.append(el("i", "dot " + statusClass(s)), el("span", null, ` ${name} `), el("b", null, part.stale ? t("stale") : pct(part.uptime)));
      line.append(chip);
    });
    node.append(line);
  }
  // A monitor of several models: each model's own status and uptime, under the combined row.
  const models = Object.keys(m.models || {});
  if (models.length) {
    const line = el("div", "models");
    line.append(el("span", "model-rule", `${t("models")} (${t("rule_" + m.model_rule) || m.model_rule})`));
    models.forEach((name) => {
      const part = m.models[name];
      const st = part.status !== undefined ? part.status : (part.current_status ? part.current_status.status : null);
      const s = st === null || st === undefined ? -1 : st;
      const chip = el("span", "model-chip");
      chip.dataset.model = name;
      chip.dataset.status = String(s);
      chip.append(el("i", "dot " + statusClass(s)), el("span", null, ` ${name} `), el("b", null, pct(part.uptime)));
      line.append(chip);
    });
    node.append(line);
  }
  return node;
}

// The headline for the whole page (every monitor, whatever the filters): all up, or how many
// of how many are down; then maintenance now and planned.
function banner(monitors) {
  const probed = monitors.filter((m) => m.current_status);
  const down = probed.filter((m) => m.current_status.status === 0).length;
  const slow = probed.filter((m) => m.current_status.status === 2).length;
  const box = $("banner");
  box.className = "banner " + (down > 0 ? "down" : slow > 0 ? "slow" : "up");
  box.dataset.down = String(down);
  box.dataset.total = String(monitors.length);
  let text = down > 0 ? fill(t("down_of"), { n: down, m: monitors.length }) : t("all_up");
  if (slow > 0) text += " · " + fill(t("degraded_of"), { n: slow });
  box.textContent = text;
  box.hidden = false;
  // One line per window (a daily window over every monitor is one line, not one per monitor).
  const windows = new Map();
  monitors.forEach((m) => {
    const w = m.maintenance || {};
    [["now", w.current], ["next", w.next]].forEach(([kind, win]) => {
      if (!win) return;
      const key = `${kind}|${win.name}|${win.start}|${win.end}`;
      if (!windows.has(key)) windows.set(key, { kind, win, who: [] });
      windows.get(key).who.push(`${m.provider} / ${m.service}`);
    });
  });
  const notes = [...windows.values()].map(({ kind, win, who }) => {
    const names = who.length > 3 ? `${who.slice(0, 3).join(", ")} +${who.length - 3}` : who.join(", ");
    const text = kind === "now"
      ? `${t("maintenance_now")}: ${names} (${win.name}) ${t("until")} ${utcDate(win.end)} ${utcTime(win.end)} ${t("utc")}`
      : `${t("maintenance_next")}: ${names} (${win.name}) ${utcDate(win.start)} ${utcTime(win.start)}–${utcTime(win.end)} ${t("utc")}`;
    return [kind, text];
  });
  $("announcements").replaceChildren(...notes.map(([kind, text]) => el("li", "maint-" + kind, text)));
  $("announcements").hidden = notes.length === 0;
}

// `provider/service[/channel]` patterns, `*` for any part, case-insensitive; two parts match
// whatever the channel (as the config's maintenance and hidden patterns).
function matches(pattern, m) {
  const parts = pattern.split("/").map((p) => p.trim().toLowerCase());
  const names = [m.provider, m.service, m.channel || ""].map((n) => n.toLowerCase());
  return parts.every((part, i) => part === "*" || part === names[i]);
}

const visible = (monitors) => monitors.filter((m) => !state.page.hidden.some((p) => matches(p, m)));

function groupOf(m) {
  const key = monitorKey(m).toLowerCase();
  const set = state.page.monitor_groups.find((g) => `${g.provider}/${g.service}/${g.channel || ""}`.toLowerCase() === key);
  return set ? set.group : m.provider;
}

// Groups in the configured order, then the others as their first monitor comes in the config
// (whatever the sort); the rows within a group in `monitors`' (sorted) order.
function grouped(monitors) {
  const groups = new Map();
  state.page.groups.forEach((name) => groups.set(name.toLowerCase(), { name, monitors: [] }));
  visible(state.data).forEach((m) => {
    const name = groupOf(m);
    if (!groups.has(name.toLowerCase())) groups.set(name.toLowerCase(), { name, monitors: [] });
  });
  monitors.forEach((m) => {
    const name = groupOf(m);
    if (!groups.has(name.toLowerCase())) groups.set(name.toLowerCase(), { name, monitors: [] });
    groups.get(name.toLowerCase()).monitors.push(m);
  });
  return [...groups.values()].filter((g) => g.monitors.length > 0);
}

function groupSection(group) {
  const section = el("section", "group");
  section.dataset.group = group.name;
  const down = group.monitors.filter((m) => m.current_status && m.current_status.status === 0).length;
  const collapsed = state.collapsed.has(group.name);
  const head = el("button", "group-head " + (down > 0 ? "has-down" : "all-up"));
  head.type = "button";
  head.setAttribute("aria-expanded", String(!collapsed));
  head.append(el("span", "group-name", group.name));
  const count = group.monitors.length === 1 ? t("group_summary_one") : fill(t("group_summary"), { n: group.monitors.length });
  const summary = [count, down > 0 ? fill(t("group_down"), { n: down }) : t("group_up")];
  head.append(el("span", "group-summary", summary.join(" · ")));
  head.addEventListener("click", () => {
    if (state.collapsed.has(group.name)) state.collapsed.delete(group.name); else state.collapsed.add(group.name);
    render();
  });
  const rows = el("div", "group-rows");
  rows.hidden = collapsed;
  rows.append(...group.monitors.map(row));
  section.append(head, rows);
  return section;
}

function render() {
  applyStaticTexts();
  if (!state.data) return;
  const monitors = visible(state.data);
  fillSelect($("filter-provider"), [...new Set(monitors.map((m) => m.provider))], state.provider);
  fillSelect($("filter-service"), [...new Set(monitors.map((m) => m.service))], state.service);
  // The node switch, once the answer names more than one node (kept while one is chosen).
  if (!state.node) state.nodes = [...new Set(monitors.flatMap((m) => Object.keys(m.nodes || {})))].sort();
  fillSelect($("node"), state.nodes, state.node);
  $("node-switch").hidden = state.nodes.length < 2;
  const shown = sorted(monitors).filter((m) =>
    (!state.provider || m.provider === state.provider) && (!state.service || m.service === state.service));
  banner(monitors);
  incidentList();
  // Rows are drawn anew: a focused bucket (keyboard, or the one just opened) keeps the focus.
  const focused = document.activeElement && document.activeElement.closest ? document.activeElement : null;
  const focusRow = focused && focused.classList.contains("bucket") ? focused.closest(".monitor-row") : null;
  const focusAt = focusRow ? [focusRow.dataset.key, focused.dataset.timestamp] : null;
  const focusGroup = focused && focused.classList.contains("group-head") ? focused.closest(".group").dataset.group : null;
  $("rows").replaceChildren(...grouped(shown).map(groupSection));
  if (focusGroup !== null) {
    const head = [...$("rows").querySelectorAll(".group")].find((g) => g.dataset.group === focusGroup);
    if (head) head.querySelector(".group-head").focus();
  }
  if (state.refocus) {
    const [key, at] = [state.refocus.slice(0, state.refocus.lastIndexOf("@")), state.refocus.slice(state.refocus.lastIndexOf("@") + 1)];
    const again = [...$("rows").querySelectorAll(".monitor-row")].find((r) => `${state.period}|${state.node}|${r.dataset.key}` === key);
    const bucket = again && again.querySelector(`.bucket[data-timestamp="${at}"]`);
    if (bucket) {
      again.querySelectorAll(".bucket").forEach((b) => b.setAttribute("tabindex", b === bucket ? "0" : "-1"));
      bucket.focus();
    }
    state.refocus = null;
  } else if (focusAt) {
    const again = [...$("rows").querySelectorAll(".monitor-row")].find((r) => r.dataset.key === focusAt[0]);
    const bucket = again && again.querySelector(`.bucket[data-timestamp="${focusAt[1]}"]`);
    if (bucket) {
      again.querySelectorAll(".bucket").forEach((b) => b.setAttribute("tabindex", b === bucket ? "0" : "-1"));
      bucket.focus();
    }
  }
  const when = state.generatedAt ? `${utcTime(state.generatedAt, true)} ${t("utc")}` : "";
  $("summary").textContent = `${shown.length} ${t("monitors")} · ${t("updated")} ${when}`;
}

// `view=compact` (columns) back into the shape the page draws.
function expand(m) {
  const c = m.timeline;
  const timeline = c.status.map((status, i) => ({ timestamp: c.start + i * c.step, status, availability: c.availability[i] }));
  const nodes = {};
  Object.entries(m.nodes || {}).forEach(([name, n]) => {
    nodes[name] = { current_status: n.status === null ? null : { status: n.status }, uptime: n.uptime, stale: n.stale, last_probe: n.last_probe };
  });
  return { ...m, timeline, nodes };
}

// The period's incidents, on their own: a slow history read never holds up the bars.
async function loadIncidents() {
  const asked = state.period + "|" + state.node;
  const node = state.node ? `&node=${encodeURIComponent(state.node)}` : "";
  let answer = null;
  try {
    const response = await fetch(`/api/incidents?period=${encodeURIComponent(state.period)}${node}`, { cache: "no-cache" });
    if (response.ok) answer = await response.json();
  } catch (_) { /* shown below */ }
  if (asked !== state.period + "|" + state.node) return;
  if (answer) {
    state.incidents = answer.incidents;
    state.incidentsTruncated = !!answer.truncated;
    state.incidentsFor = asked;
  } else {
    // A failed refresh keeps this period's list; another period's is never shown for it.
    state.incidentsFailed = asked;
  }
  if (state.data) incidentList();
}

async function load() {
  try {
    const node = state.node ? `&node=${encodeURIComponent(state.node)}` : "";
    if (!state.embed) loadIncidents();
    const [response, settings] = await Promise.all([
      // Revalidated each time: an unchanged answer is a 304 (the browser keeps the body).
      fetch(`/api/status?period=${encodeURIComponent(state.period)}${node}&view=compact`, { cache: "no-cache" }),
      fetch("/api/page", { cache: "no-store" }).then((r) => (r.ok ? r.json() : null)).catch(() => null),
    ]);
    if (settings) state.page = settings;
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const body = await response.json();
    state.data = body.data.map(expand);
    fetchDetail();
    state.generatedAt = body.meta.generated_at;
    $("error").hidden = true;
  } catch (e) {
    $("error").textContent = `${t("error")}: ${e.message}`;
    $("error").hidden = false;
  }
  render();
  document.body.dataset.loaded = state.period + (state.node ? "@" + state.node : "");
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".period").forEach((b) => b.addEventListener("click", () => {
    state.period = b.dataset.period; remember("period"); state.open = null; state.detail = null; load();
  }));
  $("lang").addEventListener("click", () => { state.lang = state.lang === "zh" ? "en" : "zh"; remember("lang"); render(); });
  $("theme").addEventListener("click", () => { state.theme = state.theme === "dark" ? "light" : "dark"; remember("theme"); render(); });
  $("filter-provider").addEventListener("change", (e) => { state.provider = e.target.value; render(); });
  $("filter-service").addEventListener("change", (e) => { state.service = e.target.value; render(); });
  $("sort").addEventListener("change", (e) => { state.sort = e.target.value; render(); });
  $("node").addEventListener("change", (e) => { state.node = e.target.value; state.open = null; state.detail = null; load(); });
  applyStaticTexts();
  load();
  setInterval(load, 30000);
});
