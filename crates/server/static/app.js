// Clipcart's small progressive enhancements. Every page works without JavaScript.
"use strict";
document.addEventListener("submit", (event) => {
  // Prevent double submits of the same form (e.g. "Place order" clicked twice).
  const form = event.target;
  if (form.dataset.submitted === "1") {
    event.preventDefault();
    return;
  }
  form.dataset.submitted = "1";
  const button = form.querySelector("button[type=submit], button:not([type])");
  if (button) button.setAttribute("aria-busy", "true");
});
