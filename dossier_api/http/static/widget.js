// Maillon dossier widget: asks Element (Matrix widget API) for an OpenID token, trades it
// for a Maillon session, then loads the dossier page. No token is stored; nothing is sent
// elsewhere.
(function () {
  "use strict";
  var root = document.getElementById("dossier");
  var params = new URLSearchParams(window.location.search);
  var dossierId = params.get("dossier") || "";
  var roomId = params.get("room") || "";
  var lang = params.get("lang") === "en" ? "en" : "fr";
  var widgetId = params.get("widgetId") || "maillon_dossier";
  var parentOrigin = null;
  var pending = {};
  var counter = 0;
  var texts = {
    fr: {
      noParent: "Ouvrez ce widget depuis la salle du patient dans Element.",
      refused: "Accès refusé : Element n'a pas transmis votre identité au dossier.",
      failed: "Le dossier n'a pas pu être chargé. Réessayez dans un instant.",
    },
    en: {
      noParent: "Open this widget from the patient's room in Element.",
      refused: "Access refused: Element did not share your identity with the dossier.",
      failed: "The dossier could not be loaded. Please try again shortly.",
    },
  }[lang];

  function say(text) {
    root.textContent = "";
    var p = document.createElement("p");
    p.className = "notice";
    p.textContent = text;
    root.appendChild(p);
  }

  function send(action, data, callback) {
    var requestId = "maillon-" + ++counter;
    pending[requestId] = callback;
    window.parent.postMessage(
      { api: "fromWidget", widgetId: widgetId, requestId: requestId, action: action, data: data },
      parentOrigin || "*"
    );
  }

  function load(token) {
    var page =
      "widget/dossiers/" + encodeURIComponent(dossierId) +
      "?room=" + encodeURIComponent(roomId) + "&lang=" + lang;
    // The OpenID token is traded once for a Maillon session (an HttpOnly cookie of this
    // origin); it is sent nowhere else and not kept.
    fetch("session/openid", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ openid_token: token }),
      credentials: "same-origin",
    })
      .then(function (resp) {
        if (!resp.ok) throw new Error("exchange refused");
        // The dossier page itself (the workspace's, narrow), with the session's cookie.
        window.location.replace(page);
      })
      .catch(function () {
        say(texts.failed);
      });
  }

  function onCredentials(data) {
    if (data && data.state === "allowed" && data.access_token) {
      load(data.access_token);
    } else if (data && data.state === "blocked") {
      say(texts.refused);
    }
  }

  window.addEventListener("message", function (event) {
    var msg = event.data || {};
    if (event.source !== window.parent) return;
    if (parentOrigin === null) parentOrigin = event.origin;
    if (event.origin !== parentOrigin) return;
    if (msg.api === "toWidget") {
      var reply = {};
      if (msg.action === "capabilities") reply = { capabilities: [] };
      if (msg.action === "openid_credentials") onCredentials(msg.data);
      window.parent.postMessage(Object.assign({}, msg, { response: reply }), parentOrigin);
      if (msg.action === "capabilities") {
        send("get_openid", {}, function (resp) {
          onCredentials(resp);
        });
      }
    } else if (msg.api === "fromWidget" && pending[msg.requestId]) {
      pending[msg.requestId](msg.response);
      delete pending[msg.requestId];
    }
  });

  if (window.parent === window) {
    say(texts.noParent);
  } else {
    send("content_loaded", {}, function () {});
  }
})();
