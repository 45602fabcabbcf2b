// The one-time location page an SMS links to: one tap sends the phone's position once.
(() => {
  "use strict";
  const ui = JSON.parse(document.getElementById("ess-config").textContent).ui;
  const status = document.getElementById("locate-status");
  const button = document.getElementById("locate");
  button.addEventListener("click", () => {
    status.textContent = ui.locating;
    navigator.geolocation.getCurrentPosition(async (pos) => {
      const response = await fetch(location.pathname, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ lat: pos.coords.latitude, lon: pos.coords.longitude, accuracy: pos.coords.accuracy }),
      });
      status.textContent = response.ok ? ui["locate.done"] : ui["locate.expired"];
      button.disabled = true;
    }, () => { status.textContent = ui.location_denied; }, { enableHighAccuracy: true, timeout: 20000 });
  });
})();
