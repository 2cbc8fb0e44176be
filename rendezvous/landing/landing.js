// The landing page of a share link: builds the machsend:// form of the
// link (for the helper registered for that scheme) and the command line
// from the page's own address. The secret is in location.hash, which the
// browser never sent to the server.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var status = document.getElementById("status");
  var app = document.getElementById("app");
  if (!status || !app) {
    return;
  }
  var secret = location.hash.slice(1);
  if (!/^[A-Za-z0-9_-]{22,}$/.test(secret)) {
    document.getElementById("nosecret").hidden = false;
    document.getElementById("open").hidden = true;
    return;
  }
  var session = status.getAttribute("data-session");
  // location.search carries the server's TLS pin (?pin=), if any.
  app.href = "machsend://" + location.host + "/" + session + location.search + "#" + secret;
  document.getElementById("cmd").textContent = "machsend get '" + location.href + "'";
});
