// Plinth dashboard: the little the pages do with JavaScript. Every page reads without it.
"use strict";
document.addEventListener("click", (e) => {
  const button = e.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (source && navigator.clipboard) {
    navigator.clipboard.writeText(source.textContent).then(() => { button.textContent = "copied"; });
  }
});
// Forms that change many runs or stop one ask first (the server still checks everything).
document.addEventListener("submit", (e) => {
  const question = e.target.dataset.confirm;
  if (question && !window.confirm(question)) e.preventDefault();
});
// A run that has not ended follows itself: each change its live stream announces re-reads the
// page and swaps its content in place (no reload); the stream closes when the run ends.
const live = document.querySelector("main[data-live]");
if (live && window.EventSource) {
  const source = new EventSource(live.dataset.live);
  source.addEventListener("run", async (e) => {
    if (e.data === live.dataset.mark) return;
    live.dataset.mark = e.data;
    const reply = await fetch(window.location.href, { headers: { accept: "text/html" } });
    const fresh = new DOMParser().parseFromString(await reply.text(), "text/html").querySelector("main");
    if (fresh) live.innerHTML = fresh.innerHTML;
    if (!fresh || !fresh.dataset.live) source.close();
  });
}
