// Live calls (docs/dashboard.md "Live calls"): fetch the server-rendered list again every few
// seconds and put it in place when it changed. No library, no build step, no inline script.
(function () {
  "use strict";
  const root = document.getElementById("live");
  if (!root) return;
  const source = root.dataset.source;
  const every = Number(root.dataset.refreshMs) || 2000;
  let shown = null;
  let timer = null;
  let busy = false;

  async function refresh() {
    timer = null;
    if (busy) return;
    busy = true;
    try {
      // "manual": a session that ended answers with a redirect to the login form; reload
      // the page so the browser goes there instead of showing the form inside the list.
      const response = await fetch(source, {
        credentials: "same-origin",
        redirect: "manual",
        headers: { Accept: "text/html" },
      });
      if (response.type === "opaqueredirect" || response.status === 401) {
        window.location.reload();
        return;
      }
      if (response.ok) {
        const html = await response.text();
        if (html !== shown) {
          root.innerHTML = html;
          shown = html;
        }
        root.dataset.updated = String(Date.now());
      }
    } catch (error) {
      // The server is restarting or the network dropped: try again at the next tick.
    } finally {
      busy = false;
    }
    schedule();
  }

  function schedule() {
    if (timer === null && !document.hidden) timer = window.setTimeout(refresh, every);
  }

  // A hidden tab asks nothing; it refreshes at once when shown again.
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && timer === null && !busy) refresh();
  });
  schedule();
})();
