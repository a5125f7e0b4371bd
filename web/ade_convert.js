// AnimateDiff-Evolved workflows on AnimDiff: when a loaded workflow holds ADE nodes this server lacks, offer to
// convert it in place (the pack's route /animdiff/ade/convert does the work: ade_convert/) and show the report.
// Also a command, "Convert AnimateDiff-Evolved nodes to AnimDiff", in the Workflow menu. Other packs' nodes that work
// only beside ADE (Advanced-ControlNet's SparseCtrl loaders: /animdiff/ade/needs-ade) are offered too while ADE is
// not installed, though their own pack is: they would fail when the prompt runs.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const COMMAND = "AnimDiff.ConvertADE";
let known = null;
let needing = null;
let loadingConverted = false;  // the converted graph may still hold unsupported ADE nodes: no second offer for it

async function adeNodeIds() {
  if (!known) known = new Set(await (await api.fetchApi("/animdiff/ade/nodes")).json());
  return known;
}

async function missingAde(types) {
  const ids = await adeNodeIds();
  const names = (types || []).map((t) => (typeof t === "string" ? t : t?.type)).filter(Boolean);
  return [...new Set(names.filter((t) => ids.has(t) || t.startsWith("ADE_")))];
}

async function needingAde() {
  if (!needing) needing = new Set(await (await api.fetchApi("/animdiff/ade/needs-ade")).json());
  const adeInstalled = Object.keys(window.LiteGraph?.registered_node_types ?? {}).some((t) => t.startsWith("ADE_"));
  if (adeInstalled) return [];
  return [...new Set((app.graph?.nodes ?? []).map((n) => n.type).filter((t) => needing.has(t)))];
}

function dialog(title, text, buttons) {
  document.getElementById("animdiff-ade-dialog")?.remove();
  return new Promise((resolve) => {
    const box = document.createElement("div");
    box.id = "animdiff-ade-dialog";
    box.style.cssText = "position:fixed;top:15%;left:50%;transform:translateX(-50%);z-index:10000;max-width:760px;max-height:65vh;" +
      "overflow:auto;background:#222;color:#ddd;border:1px solid #666;border-radius:8px;padding:16px;font:13px sans-serif";
    const head = document.createElement("h3");
    head.textContent = title;
    const body = document.createElement("pre");
    body.style.cssText = "white-space:pre-wrap";
    body.textContent = text;
    box.append(head, body);
    for (const [label, value] of buttons) {
      const button = document.createElement("button");
      button.textContent = label;
      button.dataset.value = value;
      button.style.cssText = "margin:8px 8px 0 0;padding:4px 12px";
      button.onclick = () => { box.remove(); resolve(value); };
      box.append(button);
    }
    document.body.append(box);
  });
}

async function convertCurrent() {
  const response = await api.fetchApi("/animdiff/ade/convert", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ workflow: app.graph.serialize(), name: app.extensionManager?.workflow?.activeWorkflow?.filename ?? "" }),
  });
  const body = await response.json();
  if (!response.ok) {
    await dialog("AnimDiff: cannot convert this workflow", body.error ?? response.statusText, [["Close", "close"]]);
    return null;
  }
  loadingConverted = true;
  try {
    await app.loadGraphData(body.workflow);
  } finally {
    loadingConverted = false;
  }
  await dialog("AnimDiff: converted from AnimateDiff-Evolved", body.summary, [["Close", "close"]]);
  return body.report;
}

app.registerExtension({
  name: "AnimDiff.ADEConverter",
  commands: [{ id: COMMAND, label: "Convert AnimateDiff-Evolved nodes to AnimDiff", function: convertCurrent }],
  menuCommands: [{ path: ["Workflow"], commands: [COMMAND] }],
  async afterConfigureGraph(missingNodeTypes) {
    if (loadingConverted) return;
    const needs = await needingAde();
    const missing = (await missingAde(missingNodeTypes)).filter((t) => !needing.has(t));
    if ((!missing.length && !needs.length) || loadingConverted) return;
    const lines = [];
    if (missing.length) lines.push(`These AnimateDiff-Evolved nodes are not installed:\n  ${missing.join("\n  ")}`);
    if (needs.length) lines.push("These nodes of other packs work only with AnimateDiff-Evolved, which is not installed: " +
      `AnimDiffLoadSparseCtrl loads SparseCtrl on AnimDiff:\n  ${needs.join("\n  ")}`);
    const choice = await dialog(
      "AnimDiff: this is an AnimateDiff-Evolved workflow",
      `${lines.join("\n\n")}\n\n` +
      "AnimDiff can convert them in place; nodes it cannot convert stay as they are and the report names them.",
      [["Convert to AnimDiff", "convert"], ["Keep as it is", "keep"]]);
    if (choice === "convert") await convertCurrent();
  },
});
