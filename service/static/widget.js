/* unsource suggest widget: shows existing community answers (or a notice to contact staff
 * for confidential questions) under a forum's question box while the user types.
 *
 *   <input id="question">
 *   <script src="https://unsource.example.com/widget.js" data-target="#question"
 *           data-key="uns_public_key" defer></script>
 *
 * Attributes: data-target (CSS selector of the title input, default "#question"),
 * data-key (a *public* API key; omit in dev mode), data-k (suggestions, default 3),
 * data-debounce (ms, default 350), data-min-chars (default 10), data-staff-url (a link for
 * the staff notice). No framework; text is inserted with textContent only.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var api = new URL(script.src, window.location.href).origin;
  var attr = function (name, fallback) {
    var v = script.getAttribute("data-" + name);
    return v === null || v === "" ? fallback : v;
  };
  var key = attr("key", null);
  var target = attr("target", "#question");
  var k = parseInt(attr("k", "3"), 10);
  var debounce = parseInt(attr("debounce", "350"), 10);
  var minChars = parseInt(attr("min-chars", "10"), 10);
  var staffUrl = attr("staff-url", null);

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text) node.textContent = text;
    return node;
  }

  function post(path, payload) {
    var headers = { "Content-Type": "application/json" };
    if (key) headers["X-API-Key"] = key;
    return fetch(api + path, { method: "POST", headers: headers, body: JSON.stringify(payload) });
  }

  function attach(input) {
    var box = el("div", "unsource-box");
    box.setAttribute("aria-live", "polite");
    input.insertAdjacentElement("afterend", box);
    var timer = null;
    var latest = 0;

    function clear() {
      while (box.firstChild) box.removeChild(box.firstChild);
      box.removeAttribute("data-decision");
    }

    function staffNotice(data) {
      var note = el("div", "unsource-staff");
      note.setAttribute("role", "alert");
      note.appendChild(el("strong", null, "This looks like a question for our support team."));
      note.appendChild(el("p", null,
        "It may involve your account, payments or personal details, so please don't post it " +
        "in the public forum. Our staff will help you privately."));
      if (staffUrl) {
        var link = el("a", "unsource-staff-link", "Contact support");
        link.href = staffUrl;
        note.appendChild(link);
      }
      box.appendChild(note);
    }

    function suggestions(data) {
      box.appendChild(el("div", "unsource-heading", "Existing answers that may help:"));
      var list = el("ul", "unsource-list");
      data.suggestions.forEach(function (s) {
        var item = el("li", "unsource-suggestion");
        item.setAttribute("data-thread-id", s.thread_id);
        var title = el(s.url ? "a" : "span", "unsource-title", s.title);
        if (s.url) { title.href = s.url; title.target = "_blank"; title.rel = "noopener"; }
        item.appendChild(title);
        if (s.accepted) item.appendChild(el("span", "unsource-accepted", " ✓ accepted"));
        item.appendChild(el("p", "unsource-excerpt", s.answer_excerpt));
        var button = el("button", "unsource-helpful", "This helped");
        button.type = "button";
        button.addEventListener("click", function () {
          post("/v1/feedback", { request_id: data.request_id, thread_id: s.thread_id, helpful: true })
            .then(function () { button.textContent = "Thanks!"; button.disabled = true; })
            .catch(function () {});
        });
        item.appendChild(button);
        list.appendChild(item);
      });
      box.appendChild(list);
    }

    function render(data) {
      clear();
      if (!data) return;
      box.setAttribute("data-decision", data.decision);
      if (data.decision === "staff") staffNotice(data);
      else if (data.decision === "suggest" && data.suggestions.length) suggestions(data);
      else box.appendChild(el("div", "unsource-none", "No existing answer yet: go ahead and post."));
    }

    function run() {
      var title = input.value.trim().slice(0, 500);
      if (title.length < minChars) { render(null); return; }
      var mine = ++latest;
      post("/v1/suggest", { title: title, k: k })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) { if (mine === latest && data) render(data); })
        .catch(function () {});
    }

    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(run, debounce);
    });
  }

  function init() {
    document.querySelectorAll(target).forEach(attach);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
