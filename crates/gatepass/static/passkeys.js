// Passkeys in the gatepass pages: sign-in on the login page (the username field's
// autofill, conditional mediation, and a "Sign in with a passkey" button) and the
// Passkeys section of the account page (add, rename, remove). Same-origin JSON calls to
// /api/passkeys/…; the session cookie authenticates them and X-CSRF-Token carries the
// page's CSRF token. No library, no inline script: the CSP allows 'self' scripts only.
"use strict";
(function () {
  function b64uToBuf(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function bufToB64u(buf) {
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function creationOptions(pk) {
    var o = Object.assign({}, pk);
    o.challenge = b64uToBuf(pk.challenge);
    o.user = Object.assign({}, pk.user, { id: b64uToBuf(pk.user.id) });
    o.excludeCredentials = (pk.excludeCredentials || []).map(function (c) {
      return Object.assign({}, c, { id: b64uToBuf(c.id) });
    });
    return o;
  }
  function requestOptions(pk) {
    var o = Object.assign({}, pk);
    o.challenge = b64uToBuf(pk.challenge);
    o.allowCredentials = (pk.allowCredentials || []).map(function (c) {
      return Object.assign({}, c, { id: b64uToBuf(c.id) });
    });
    return o;
  }
  function credentialJSON(cred) {
    var r = cred.response, response = { clientDataJSON: bufToB64u(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = bufToB64u(r.attestationObject);
      if (r.getTransports) response.transports = r.getTransports();
    } else {
      response.authenticatorData = bufToB64u(r.authenticatorData);
      response.signature = bufToB64u(r.signature);
      if (r.userHandle) response.userHandle = bufToB64u(r.userHandle);
    }
    return {
      id: cred.id,
      rawId: bufToB64u(cred.rawId),
      type: cred.type,
      response: response,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
    };
  }
  function csrf() {
    var input = document.querySelector('input[name="csrf_token"]');
    return input ? input.value : "";
  }
  function call(method, path, body) {
    var headers = { "Content-Type": "application/json", "X-CSRF-Token": csrf() };
    return fetch(path, {
      method: method,
      headers: headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (r) {
      return r.text().then(function (t) {
        var data = {};
        try { data = t ? JSON.parse(t) : {}; } catch (e) { data = {}; }
        return { ok: r.ok, status: r.status, data: data };
      });
    });
  }
  function say(el, text, isError) {
    if (!el) return;
    el.textContent = text;
    el.hidden = !text;
    el.className = "notice " + (isError ? "error" : "success");
  }

  // A passwordless sign-in: start, let the browser ask the authenticator, finish with
  // cookies. `mediation` is "conditional" for the autofill, undefined for the button.
  var pendingConditional = null;
  function passkeySignIn(conditional) {
    return call("POST", "/api/passkeys/login/start", {}).then(function (start) {
      if (!start.ok) throw new Error(start.data.error || "Passkey sign-in is not available");
      var opts = { publicKey: requestOptions(start.data.publicKey) };
      if (conditional) {
        pendingConditional = new AbortController();
        opts.mediation = "conditional";
        opts.signal = pendingConditional.signal;
      }
      return navigator.credentials.get(opts).then(function (cred) {
        return call("POST", "/api/passkeys/login/finish?cookie=true", {
          ceremony: start.data.ceremony,
          credential: credentialJSON(cred),
        });
      });
    }).then(function (done) {
      if (!done.ok) throw new Error(done.data.error || "The passkey was not accepted");
      return done;
    });
  }

  // Where a sign-in on the login page goes on to: wherever the password form would (the
  // server puts `return_to` in the form only after checking it, so the list of allowed
  // pages lives there alone), else the account page. Only a path on this server.
  function afterSignIn() {
    var input = document.querySelector('input[name="return_to"]');
    var next = input ? input.value : "";
    return next.charAt(0) === "/" && next.charAt(1) !== "/" && next.indexOf("\\") < 0 ? next : "/";
  }

  function loginPage(button) {
    var status = document.getElementById("passkey-status");
    if (!window.PublicKeyCredential) {
      button.hidden = true;
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      if (pendingConditional) pendingConditional.abort();
      say(status, "", false);
      passkeySignIn(false).then(function () {
        window.location.assign(afterSignIn());
      }, function (e) {
        say(status, e.message || "Passkey sign-in failed", true);
      });
    });
    if (PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then(function (yes) {
        if (!yes) return;
        passkeySignIn(true).then(function () {
          window.location.assign(afterSignIn());
        }, function (e) {
          if (e && e.name === "AbortError") return;
          say(status, e.message || "Passkey sign-in failed", true);
        });
      });
    }
  }

  // The second login step with a passkey: the options for this step's challenge, the
  // browser asks the authenticator, the step finishes with cookies. The challenge works
  // once whatever the outcome, so a refusal means signing in again.
  function secondStep(button) {
    var status = document.getElementById("passkey-status");
    if (!window.PublicKeyCredential) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      var challenge = button.getAttribute("data-challenge");
      say(status, "", false);
      call("POST", "/api/login/mfa/webauthn/options", { challenge: challenge }).then(function (options) {
        if (!options.ok) throw new Error("This sign-in could not be finished. Start over.");
        return navigator.credentials.get({ publicKey: requestOptions(options.data.publicKey) });
      }).then(function (cred) {
        return call("POST", "/api/login/mfa?cookie=true", { challenge: challenge, webauthn: credentialJSON(cred) });
      }).then(function (done) {
        if (!done.ok) throw new Error("The passkey was not accepted. Start over and enter your password again.");
        var next = button.getAttribute("data-return-to") || "/";
        // Only ever a path on this server (the server checked it when it made the page).
        window.location.assign(next.charAt(0) === "/" && next.charAt(1) !== "/" ? next : "/");
      }).catch(function (e) {
        say(status, e.message || "The passkey was not accepted", true);
      });
    });
  }

  function accountPage(section) {
    var list = document.getElementById("passkey-list");
    var status = document.getElementById("passkey-status");
    var codes = document.getElementById("passkey-recovery-codes");
    var form = document.getElementById("passkey-add");
    function render(passkeys) {
      list.textContent = "";
      passkeys.forEach(function (p) {
        var li = document.createElement("li");
        li.dataset.id = p.id;
        var label = document.createElement("strong");
        label.className = "passkey-name";
        label.textContent = p.name;
        var meta = document.createElement("small");
        meta.className = "muted";
        meta.textContent = (p.backup_eligible ? " synced passkey" : " device-bound passkey") +
          " · added " + p.created_at + (p.last_used_at ? " · last used " + p.last_used_at : "");
        var rename = document.createElement("button");
        rename.type = "button";
        rename.className = "secondary small passkey-rename";
        rename.textContent = "Rename";
        rename.addEventListener("click", function () {
          var name = window.prompt("New name for this passkey", p.name);
          if (name === null) return;
          call("PATCH", "/api/passkeys/" + encodeURIComponent(p.id), { name: name }).then(function (r) {
            if (!r.ok) return say(status, r.data.error || "Could not rename", true);
            say(status, "Passkey renamed", false);
            refresh();
          });
        });
        var remove = document.createElement("button");
        remove.type = "button";
        remove.className = "secondary small passkey-remove";
        remove.textContent = "Remove";
        remove.addEventListener("click", function () { removePasskey(p); });
        li.append(label, meta, rename, remove);
        list.append(li);
      });
      document.getElementById("passkey-empty").hidden = passkeys.length > 0;
    }
    function refresh() {
      return call("GET", "/api/passkeys").then(function (r) {
        if (r.ok) render(r.data.passkeys);
      });
    }
    // Removing needs a fresh sign-in with a second factor: signing in again with a
    // passkey is that step-up; then the removal is retried once.
    function removePasskey(p, retried) {
      call("DELETE", "/api/passkeys/" + encodeURIComponent(p.id)).then(function (r) {
        if (r.ok) {
          say(status, "Passkey \u201c" + p.name + "\u201d removed", false);
          return refresh();
        }
        if (r.status === 401 && r.data.code === "fresh_login_required" && !retried) {
          say(status, "Confirm it is you: sign in again with a passkey", false);
          return passkeySignIn(false).then(function () {
            // The sign-in replaced the session: reload the page's CSRF token first.
            return fetch("/", { credentials: "same-origin" }).then(function (page) { return page.text(); });
          }).then(function (html) {
            var fresh = new DOMParser().parseFromString(html, "text/html").querySelector('input[name="csrf_token"]');
            if (fresh) document.querySelectorAll('input[name="csrf_token"]').forEach(function (i) { i.value = fresh.value; });
            removePasskey(p, true);
          }, function (e) { say(status, e.message || "Sign-in failed", true); });
        }
        say(status, r.data.error || "Could not remove the passkey", true);
      });
    }
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var name = document.getElementById("passkey-name").value;
      say(status, "", false);
      call("POST", "/api/passkeys/registration/start", {}).then(function (start) {
        if (!start.ok) throw new Error(start.data.error || "Could not start");
        return navigator.credentials.create({ publicKey: creationOptions(start.data.publicKey) }).then(function (cred) {
          return call("POST", "/api/passkeys/registration/finish", {
            ceremony: start.data.ceremony,
            name: name,
            credential: credentialJSON(cred),
          });
        });
      }).then(function (r) {
        if (!r.ok) throw new Error(r.data.error || "The passkey was not added");
        say(status, "Passkey \u201c" + r.data.passkey.name + "\u201d added", false);
        document.getElementById("passkey-name").value = "";
        if (r.data.recovery_codes) {
          codes.hidden = false;
          var ul = codes.querySelector("ul");
          ul.textContent = "";
          r.data.recovery_codes.forEach(function (c) {
            var li = document.createElement("li");
            li.textContent = c;
            ul.append(li);
          });
        }
        return refresh();
      }).catch(function (e) {
        say(status, e.message || "The passkey was not added", true);
      });
    });
    if (!window.PublicKeyCredential) {
      say(status, "This browser does not support passkeys", true);
      form.hidden = true;
    }
    refresh();
  }

  // For other scripts of the same origin (and tests): the JSON conversions.
  window.gatepassPasskeys = {
    creationOptions: creationOptions,
    requestOptions: requestOptions,
    credentialJSON: credentialJSON,
  };

  var button = document.getElementById("passkey-login");
  if (button) loginPage(button);
  var second = document.getElementById("passkey-second");
  if (second) secondStep(second);
  var section = document.getElementById("passkeys");
  if (section) accountPage(section);
  // On an account whose second factors are passkeys only, a fresh sign-in with a passkey
  // is the step-up that unlocks the forms the page shows disabled; the page then reloads.
  document.querySelectorAll("button.passkey-stepup").forEach(function (b) {
    b.addEventListener("click", function () {
      var status = document.getElementById("passkey-status");
      passkeySignIn(false).then(function () { window.location.reload(); },
        function (e) { if (status) say(status, e.message || "Sign-in failed", true); });
    });
  });
})();
