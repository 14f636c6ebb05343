// The Run page's live update: while the run is active, fetch what changed every second (the server
// renders and escapes it) and put it in place. Nothing else on the console needs a script.
"use strict";
(function () {
  const live = document.getElementById("live");
  if (!live || live.dataset.ended === "true") return;
  let after = Number(live.dataset.after || "0");
  let busy = false;
  async function poll() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const response = await fetch(live.dataset.url + "&after=" + after, {credentials: "same-origin"});
      if (!response.ok) return;
      const part = await response.json();
      if (part.rows) document.getElementById("history").insertAdjacentHTML("beforeend", part.rows);
      document.getElementById("timeline").innerHTML = part.timeline;
      document.getElementById("summary").innerHTML = part.summary;
      after = part.last;
      if (part.ended) {
        clearInterval(timer);
        document.querySelectorAll(".while-active").forEach((el) => el.remove());
        const note = document.createElement("p");
        note.className = "notice";
        note.textContent = "The run has ended (" + part.status.replace("_", " ") + "). Reload for its result.";
        document.getElementById("summary").after(note);
      }
    } catch (e) {
      // the engine restarting: the next tick tries again
    } finally {
      busy = false;
    }
  }
  const timer = setInterval(poll, 1000);
})();
