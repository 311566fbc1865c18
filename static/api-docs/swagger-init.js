// /api/docs/: starts Swagger UI with the settings its page carries in data attributes (the CSP allows no inline
// script). Requests that change something carry the CSRF token, as the session-authenticated API requires.
(() => {
  const root = document.getElementById("swagger-ui");
  const parsed = (name, fallback) => {
    try {
      return JSON.parse(root.dataset[name]);
    } catch {
      return fallback;
    }
  };
  const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
  const ui = window.SwaggerUIBundle({
    url: root.dataset.schemaUrl,
    dom_id: "#swagger-ui",
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    validatorUrl: null, // no badge image from an online validator: images come from this site only
    requestInterceptor(request) {
      if (!SAFE_METHODS.has((request.method || "GET").toUpperCase())) {
        request.headers[root.dataset.csrfHeader] = root.dataset.csrfToken;
      }
      return request;
    },
    ...parsed("settings", {}),
  });
  const oauth = parsed("oauth2Config", null);
  if (oauth && Object.keys(oauth).length) ui.initOAuth(oauth);
})();
