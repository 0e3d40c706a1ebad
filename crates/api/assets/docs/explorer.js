// Standby's API explorer: Swagger UI (vendored, see assets/swagger-ui/VENDORED.md) on the
// served OpenAPI document. "Authorize" logs in with the password grant against /api/v3/token,
// or takes an API key as a bearer token. Nothing is fetched from outside this server.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/api/v3/openapi.json",
    dom_id: "#explorer",
    deepLinking: true,
    persistAuthorization: false,
    tryItOutEnabled: false,
    validatorUrl: null,
    defaultModelsExpandDepth: 0,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
