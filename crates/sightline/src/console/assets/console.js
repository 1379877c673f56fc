// The console's progressive enhancement: every page works without it. Same origin only
// (the Content-Security-Policy allows nothing else).
"use strict";

// The live tail: asks for the events after the newest shown, every two seconds.
function followTail(body) {
  const status = document.getElementById("tail-status");
  let after = body.dataset.after;
  let busy = false;
  async function poll() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const sep = body.dataset.feed.includes("?") ? "&" : "?";
      const r = await fetch(body.dataset.feed + sep + "after=" + encodeURIComponent(after), {
        credentials: "same-origin",
        headers: { "Accept": "text/html" },
      });
      if (r.redirected) {
        // Signed out (the session ended): the answer is the sign-in page, not rows.
        clearInterval(timer);
        if (status) status.textContent = "Signed out: reload the page to sign in again.";
      } else if (r.ok) {
        const next = r.headers.get("x-next-after");
        const html = await r.text();
        if (html.trim()) {
          const t = document.createElement("template");
          t.innerHTML = html;
          const rows = t.content.querySelectorAll("tr");
          rows.forEach((row) => row.classList.add("new"));
          body.prepend(t.content);
          if (status) status.textContent = rows.length + " new event(s).";
        }
        if (next) after = next;
      } else if (status) {
        status.textContent = "Live updates stopped (" + r.status + "): reload the page.";
      }
    } catch (e) {
      if (status) status.textContent = "Live updates paused: the server did not answer.";
    } finally {
      busy = false;
    }
  }
  const timer = setInterval(poll, 2000);
}

// The audience rule editor: the rule's parse error at its line and column as you type.
function checkRule(textarea, out) {
  let timer = null;
  let asked = 0;
  textarea.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const mine = ++asked;
      try {
        const r = await fetch(out.dataset.check + "?rule=" + encodeURIComponent(textarea.value), {
          credentials: "same-origin",
        });
        if (!r.ok || r.redirected || mine !== asked) return;
        out.innerHTML = await r.text();
        const bad = !!out.querySelector(".rule-error");
        textarea.setAttribute("aria-invalid", bad ? "true" : "false");
      } catch (e) {
        // Checked again when the form is sent.
      }
    }, 300);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const tail = document.getElementById("tail");
  if (tail && tail.dataset.feed) followTail(tail);
  const rule = document.getElementById("a-rule");
  const out = document.getElementById("rule-error");
  if (rule && out && out.dataset.check) checkRule(rule, out);
});
