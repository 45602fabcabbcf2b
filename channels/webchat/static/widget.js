// Embed the ESS chat in any page with one tag:
//   <script src="https://ess.example/chat/widget.js" data-lang="th" async></script>
// It adds a button that opens the chat in a panel (an iframe of /chat on the ESS host).
(() => {
  "use strict";
  const script = document.currentScript;
  if (!script) return;
  const origin = new URL(script.src).origin;
  const params = new URLSearchParams();
  if (script.dataset.lang) params.set("lang", script.dataset.lang);
  if (script.dataset.silent === "1") params.set("silent", "1");
  const label = script.dataset.label || "ESS Help Me";
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.setAttribute("aria-expanded", "false");
  button.style.cssText = "position:fixed;right:16px;bottom:16px;z-index:2147483646;min-height:48px;padding:10px 16px;border-radius:24px;border:0;background:#b00020;color:#fff;font:16px sans-serif;cursor:pointer";
  let frame = null;
  button.addEventListener("click", () => {
    if (!frame) {
      frame = document.createElement("iframe");
      frame.title = label;
      frame.src = origin + "/chat?" + params.toString();
      frame.allow = "geolocation";
      frame.style.cssText = "position:fixed;right:16px;bottom:76px;z-index:2147483646;width:min(400px,calc(100vw - 32px));height:min(640px,calc(100vh - 100px));border:1px solid #999;border-radius:12px;background:#fff";
      document.body.appendChild(frame);
    } else {
      frame.hidden = !frame.hidden;
    }
    button.setAttribute("aria-expanded", String(!frame.hidden));
  });
  document.body.appendChild(button);
})();
