// A widget host for the browser tests, built on the real matrix-widget-api (the library
// Element hosts widgets with): a ClientWidgetApi and a WidgetDriver that answers get_openid
// with a real OpenID token asked to the homeserver
// (POST /_matrix/client/v3/user/{userId}/openid/request_token).
//
// Configuration in the fragment (never sent to a server): #<JSON> with widget (the room
// state's widget content), roomId, userId, accessToken, homeserver, openid ("allow" or
// "block").
(function () {
  "use strict";
  var mx = window.mxwidgets;
  var config = JSON.parse(decodeURIComponent(window.location.hash.slice(1)));
  var status = document.getElementById("status");
  window.widgetHostLog = [];

  function log(line) {
    window.widgetHostLog.push(line);
    status.textContent = line;
  }

  function Driver() {
    mx.WidgetDriver.call(this);
  }
  Driver.prototype = Object.create(mx.WidgetDriver.prototype);
  Driver.prototype.constructor = Driver;
  Driver.prototype.validateCapabilities = function (requested) {
    return Promise.resolve(new Set(requested));
  };
  Driver.prototype.askOpenID = function (observer) {
    if (config.openid !== "allow") {
      log("openid: blocked");
      observer.update({ state: mx.OpenIDRequestState.Blocked });
      return;
    }
    var url =
      config.homeserver + "/_matrix/client/v3/user/" + encodeURIComponent(config.userId) +
      "/openid/request_token";
    fetch(url, {
      method: "POST",
      headers: { Authorization: "Bearer " + config.accessToken, "Content-Type": "application/json" },
      body: "{}",
    })
      .then(function (resp) {
        if (!resp.ok) throw new Error("request_token: HTTP " + resp.status);
        return resp.json();
      })
      .then(function (token) {
        log("openid: token given");
        observer.update({ state: mx.OpenIDRequestState.Allowed, token: token });
      })
      .catch(function (err) {
        log("openid: " + err);
        observer.update({ state: mx.OpenIDRequestState.Blocked });
      });
  };

  var widget = new mx.Widget(config.widget);
  var iframe = document.getElementById("widget");
  var api = new mx.ClientWidgetApi(widget, iframe, new Driver());
  api.on("ready", function () {
    log("widget ready");
  });
  iframe.src = widget.getCompleteUrl({
    widgetRoomId: config.roomId,
    currentUserId: config.userId,
    userDisplayName: config.userId,
    clientId: "fr.maillon.tests.widget-host",
    clientLanguage: "fr",
  });
  log("widget loading");
})();
