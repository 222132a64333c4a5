/* unsource suggest widget: shows existing community answers (or a notice to contact staff
 * for confidential questions) under a forum's question box while the user types.
 *
 *   <input id="question">
 *   <script src="https://unsource.example.com/widget.js" data-target="#question"
 *           data-key="uns_public_key" defer></script>
 *
 * Attributes: data-target (CSS selector of the title input, default "#question"; an input
 * added to the page later, such as Discourse's composer title "#reply-title", is attached
 * when it first gets focus),
 * data-key (a *public* API key; omit in dev mode), data-k (suggestions, default 3),
 * data-debounce (ms, default 350), data-min-chars (default 10), data-staff-url (a link for
 * the staff notice), data-lang (en, pt, es or it: the widget's own language; default the
 * page's <html lang>, else the language the service detects in the question, else English).
 * Answers in another language than the question's are marked as such. No framework; text
 * is inserted with textContent only.
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

  var MESSAGES = {
    en: {
      staffTitle: "This looks like a question for our support team.",
      staffBody: "It may involve your account, payments or personal details, so please don't " +
        "post it in the public forum. Our staff will help you privately.",
      contact: "Contact support",
      heading: "Existing answers that may help:",
      accepted: " ✓ accepted",
      helped: "This helped",
      thanks: "Thanks!",
      none: "No existing answer yet: go ahead and post.",
      otherLanguage: "Answer in {lang}"
    },
    pt: {
      staffTitle: "Esta parece ser uma pergunta para a nossa equipe de suporte.",
      staffBody: "Ela pode envolver sua conta, pagamentos ou dados pessoais; por favor, não a " +
        "publique no fórum público. Nossa equipe vai ajudar você em particular.",
      contact: "Falar com o suporte",
      heading: "Respostas existentes que podem ajudar:",
      accepted: " ✓ aceita",
      helped: "Isto ajudou",
      thanks: "Obrigado!",
      none: "Ainda não há resposta: pode publicar a sua pergunta.",
      otherLanguage: "Resposta em {lang}"
    },
    es: {
      staffTitle: "Parece una pregunta para nuestro equipo de soporte.",
      staffBody: "Puede afectar a tu cuenta, tus pagos o tus datos personales, así que no la " +
        "publiques en el foro público. Nuestro equipo te ayudará en privado.",
      contact: "Contactar con soporte",
      heading: "Respuestas existentes que pueden ayudarte:",
      accepted: " ✓ aceptada",
      helped: "Me ha servido",
      thanks: "¡Gracias!",
      none: "Todavía no hay respuesta: adelante, publica tu pregunta.",
      otherLanguage: "Respuesta en {lang}"
    },
    it: {
      staffTitle: "Sembra una domanda per il nostro team di assistenza.",
      staffBody: "Potrebbe riguardare il tuo account, i pagamenti o i tuoi dati personali: non " +
        "pubblicarla nel forum pubblico. Il nostro staff ti aiuterà in privato.",
      contact: "Contatta l'assistenza",
      heading: "Risposte esistenti che potrebbero aiutarti:",
      accepted: " ✓ accettata",
      helped: "Mi è stato utile",
      thanks: "Grazie!",
      none: "Nessuna risposta ancora: pubblica pure la domanda.",
      otherLanguage: "Risposta in {lang}"
    }
  };
  var LANGUAGE_NAMES = {
    en: { en: "English", pt: "Portuguese", es: "Spanish", it: "Italian" },
    pt: { en: "inglês", pt: "português", es: "espanhol", it: "italiano" },
    es: { en: "inglés", pt: "portugués", es: "español", it: "italiano" },
    it: { en: "inglese", pt: "portoghese", es: "spagnolo", it: "italiano" }
  };

  function served(code) {
    var base = (code || "").toLowerCase().split("-")[0];
    return MESSAGES[base] ? base : null;
  }
  // the widget's language: data-lang, else the page's <html lang>; null: follow the question
  var fixedLang = served(attr("lang", null)) || served(document.documentElement.lang);

  function messagesFor(data) {
    return MESSAGES[fixedLang || served(data && data.language) || "en"];
  }

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

    function staffNotice(data, t) {
      var note = el("div", "unsource-staff");
      note.setAttribute("role", "alert");
      note.appendChild(el("strong", null, t.staffTitle));
      note.appendChild(el("p", null, t.staffBody));
      if (staffUrl) {
        var link = el("a", "unsource-staff-link", t.contact);
        link.href = staffUrl;
        note.appendChild(link);
      }
      box.appendChild(note);
    }

    function suggestions(data, t, lang) {
      box.appendChild(el("div", "unsource-heading", t.heading));
      var list = el("ul", "unsource-list");
      data.suggestions.forEach(function (s) {
        var item = el("li", "unsource-suggestion");
        item.setAttribute("data-thread-id", s.thread_id);
        var title = el(s.url ? "a" : "span", "unsource-title", s.title);
        if (s.url) { title.href = s.url; title.target = "_blank"; title.rel = "noopener"; }
        item.appendChild(title);
        if (s.accepted) item.appendChild(el("span", "unsource-accepted", t.accepted));
        if (s.language && data.language && s.language !== data.language) {
          var name = (LANGUAGE_NAMES[lang] || LANGUAGE_NAMES.en)[s.language] || s.language;
          var other = el("span", "unsource-language", " · " + t.otherLanguage.replace("{lang}", name));
          other.setAttribute("lang", s.language);
          item.setAttribute("data-language", s.language);
          item.appendChild(other);
        }
        item.appendChild(el("p", "unsource-excerpt", s.answer_excerpt));
        var button = el("button", "unsource-helpful", t.helped);
        button.type = "button";
        button.addEventListener("click", function () {
          post("/v1/feedback", { request_id: data.request_id, thread_id: s.thread_id, helpful: true })
            .then(function () { button.textContent = t.thanks; button.disabled = true; })
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
      var t = messagesFor(data);
      var lang = fixedLang || served(data.language) || "en";
      box.setAttribute("lang", lang);
      if (data.decision === "staff") staffNotice(data, t);
      else if (data.decision === "suggest" && data.suggestions.length) suggestions(data, t, lang);
      else box.appendChild(el("div", "unsource-none", t.none));
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

  var attached = typeof WeakSet === "function" ? new WeakSet() : null;
  function attachOnce(input) {
    if (attached) {
      if (attached.has(input)) return;
      attached.add(input);
    }
    attach(input);
  }

  function init() {
    document.querySelectorAll(target).forEach(attachOnce);
    // a title box created later (a forum's composer opening, e.g. Discourse's #reply-title)
    // is attached when it first gets focus
    document.addEventListener("focusin", function (event) {
      var el = event.target;
      if (el && el.matches && el.matches(target)) attachOnce(el);
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
