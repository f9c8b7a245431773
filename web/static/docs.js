// Interactive documentation of the server's own OpenAPI document (Swagger UI, served from /vendor).
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.SwaggerUIBundle({
    url: root.dataset.spec,
    domNode: root,
    deepLinking: true,
    validatorUrl: null,
    tryItOutEnabled: false,
    // Tags start collapsed: with every operation expanded at once (over 120), Swagger UI
    // 5.35 renders the first tag only.
    docExpansion: "none",
  });
})();
