// Passkeys (WebAuthn) on Clipcart's pages. Loaded only where a passkey button is; no inline
// script (the CSP forbids it). The server speaks the browser's JSON form of WebAuthn (binary
// fields in base64url); this file turns that into ArrayBuffers for navigator.credentials and
// the answer back into JSON, then submits an ordinary form so the session cookie and the
// redirect work as for any other form.
//
// Markup it works with:
//   [data-passkey]                    hidden until WebAuthn is available
//   form[data-passkey-get=URL]        sign-in / second step / step-up / password reset: URL
//                                     answers the options
//   form[data-passkey-create=URL]     registration: URL answers the options (after step-up)
//   button[data-passkey-action]       inside such a form: starts the ceremony
//   [data-passkey-error]              inside the form's container: where failures are shown
"use strict";
(() => {
  const supported =
    typeof window.PublicKeyCredential === "function" &&
    navigator.credentials &&
    typeof navigator.credentials.get === "function";

  function fromB64url(s) {
    const b64 = s.replace(/-/g, "+").replace(/_/g, "/");
    const padded = b64 + "===".slice((b64.length + 3) % 4);
    const bin = atob(padded);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return bytes.buffer;
  }

  function toB64url(buf) {
    const bytes = new Uint8Array(buf);
    let bin = "";
    for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withIds(list) {
    return (list || []).map((c) => Object.assign({}, c, { id: fromB64url(c.id) }));
  }

  function creationOptions(pk) {
    const o = Object.assign({}, pk);
    o.challenge = fromB64url(pk.challenge);
    o.user = Object.assign({}, pk.user, { id: fromB64url(pk.user.id) });
    if (pk.excludeCredentials) o.excludeCredentials = withIds(pk.excludeCredentials);
    return o;
  }

  function requestOptions(pk) {
    const o = Object.assign({}, pk);
    o.challenge = fromB64url(pk.challenge);
    o.allowCredentials = withIds(pk.allowCredentials);
    return o;
  }

  function credentialJSON(cred) {
    const r = cred.response;
    const out = {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: { clientDataJSON: toB64url(r.clientDataJSON) },
      clientExtensionResults: {},
    };
    const ext = cred.getClientExtensionResults ? cred.getClientExtensionResults() : {};
    // Only the outputs the server reads; others may carry binary or unknown shapes.
    if (ext.credProps) out.clientExtensionResults.credProps = { rk: !!ext.credProps.rk };
    if (r.attestationObject) {
      out.response.attestationObject = toB64url(r.attestationObject);
      if (typeof r.getTransports === "function") out.response.transports = r.getTransports();
    } else {
      out.response.authenticatorData = toB64url(r.authenticatorData);
      out.response.signature = toB64url(r.signature);
      if (r.userHandle && r.userHandle.byteLength) out.response.userHandle = toB64url(r.userHandle);
    }
    return out;
  }

  function showError(form, message) {
    const scope = form.closest("[data-passkey-scope]") || form.parentElement;
    const box = scope.querySelector("[data-passkey-error]");
    if (box) {
      box.textContent = message;
      box.hidden = false;
    }
  }

  function clearError(form) {
    const scope = form.closest("[data-passkey-scope]") || form.parentElement;
    const box = scope.querySelector("[data-passkey-error]");
    if (box) {
      box.textContent = "";
      box.hidden = true;
    }
  }

  // The options request carries what the form has for it: the CSRF token, and the pending
  // sign-in, the step-up proof or the reset link's token when the form has such fields.
  async function fetchOptions(form, url) {
    const body = new URLSearchParams();
    for (const name of ["csrf", "pending", "current_password", "otp", "token"]) {
      const field = form.elements.namedItem(name);
      if (field && field.value !== undefined) body.append(name, field.value);
    }
    const res = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body,
    });
    let data = {};
    try {
      data = await res.json();
    } catch (_) {
      data = {};
    }
    if (!res.ok) throw new Error(data.error || data.detail || "The server refused (" + res.status + ").");
    return data;
  }

  async function run(form, button) {
    clearError(form);
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      const creating = form.dataset.passkeyCreate;
      const options = await fetchOptions(form, creating || form.dataset.passkeyGet);
      const cred = creating
        ? await navigator.credentials.create({ publicKey: creationOptions(options.public_key) })
        : await navigator.credentials.get({ publicKey: requestOptions(options.public_key) });
      if (!cred) throw new Error("No passkey was chosen.");
      form.elements.namedItem("ceremony").value = options.ceremony_id;
      form.elements.namedItem("credential").value = JSON.stringify(credentialJSON(cred));
      // The proof went with the options request; the final form does not need it again.
      for (const name of ["current_password", "otp"]) {
        const field = form.elements.namedItem(name);
        if (field) field.value = "";
      }
      form.submit();
    } catch (e) {
      const cancelled = e && (e.name === "NotAllowedError" || e.name === "AbortError");
      showError(
        form,
        cancelled ? "The passkey request was cancelled or timed out. Try again." : (e && e.message) || String(e),
      );
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }

  function init() {
    if (!supported) return;
    for (const el of document.querySelectorAll("[data-passkey]")) el.hidden = false;
    for (const button of document.querySelectorAll("button[data-passkey-action]")) {
      button.addEventListener("click", (event) => {
        event.preventDefault();
        run(button.form, button);
      });
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
