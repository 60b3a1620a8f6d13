(function () {
  "use strict";
  var errors = document.getElementById("js-errors");
  function report(text) {
    var p = document.createElement("p");
    p.textContent = text;
    errors.appendChild(p);
    errors.hidden = false;
  }
  window.addEventListener("error", function (e) { report(String(e.message || e)); });
  window.addEventListener("unhandledrejection", function (e) {
    report(String((e.reason && e.reason.message) || e.reason));
  });
  function $(id) { return document.getElementById(id); }
  // The JSON body of an answer; a refusal throws an Error carrying the
  // server's message and the HTTP status (`e.status`, 0 for no answer).
  async function answer(r) {
    var body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (!r.ok) {
      var err = new Error((body && body.error) || r.statusText || ("HTTP " + r.status));
      err.status = r.status;
      throw err;
    }
    if (body === null) { throw new Error("the server's answer was not JSON"); }
    return body;
  }
  // `asUser`: a user's ratings and list, which a server with a read token
  // keeps private; they go out with the token typed in this tab (the read or
  // the write token), and only to this server.
  async function getJSON(url, asUser) {
    var headers = { Accept: "application/json" };
    var token = asUser ? storedToken() : null;
    if (token) { headers.Authorization = "Bearer " + token; }
    return answer(await fetch(url, { headers: headers }));
  }
  function fill(list, items, render) {
    list.replaceChildren.apply(list, items.map(function (it) {
      var li = document.createElement("li");
      li.dataset.movieId = it.movieId;
      render(li, it);
      return li;
    }));
  }
  function line(li, text, meta) {
    li.appendChild(document.createTextNode(text));
    var s = document.createElement("span");
    s.className = "meta";
    s.textContent = meta;
    li.appendChild(s);
  }
  function status(id, text, isError) {
    var el = $(id);
    el.textContent = text;
    el.className = isError ? "note error-text" : "note";
  }
  // --- onboarding: the write token and the user being rated as ---------------
  // The token is what the person typed, kept in this tab's sessionStorage
  // (gone when the tab closes) and sent only to this server, only with a
  // rating or a request for a user's own ratings and list. The server
  // never writes it into the page.
  var TOKEN_KEY = "cinematch.writeToken";
  function storedToken() {
    try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  }
  function showToken() {
    var set = !!storedToken();
    $("onboard").dataset.token = set ? "set" : "unset";
    status("token-status", set
      ? "A token is kept for this tab (session storage); ratings and users' lists are requested with it. Forget removes it."
      : "Rating a movie sends it to this server with the write token (a server with a read token also needs it, or the read token, to show a user's lists). Type it here: it stays in this tab's session storage, never in the page.");
  }
  // The user whose lists are shown, and so the one stars rate as; their
  // ratings by movie id (the newest 1000), to show on the stars.
  var currentUser = null, known = {}, userSeq = 0;
  function showRatingAs() {
    status("rate-user", currentUser === null
      ? "Rating as: nobody yet. Choose a user id below; an id nobody has used starts a new user, whose list follows the movies they rate."
      : "Rating as user " + currentUser + ". Click the stars of a movie in their list or in a search; the list follows.");
  }
  function starsText(v) { return v + (v === 1 ? " star" : " stars"); }
  function paintStars(box) {
    var v = known[box.dataset.movieId];
    box.dataset.rating = v === undefined ? "" : String(v);
    Array.prototype.forEach.call(box.children, function (b) {
      b.classList.toggle("on", v !== undefined && Number(b.dataset.value) <= v);
    });
    box.title = v === undefined ? "Not rated" : "Rated " + starsText(v);
  }
  // Ten buttons, each half a star, as MovieLens rates: 0.5 to 5 stars.
  function starButtons(movie) {
    var box = document.createElement("span");
    box.className = "stars";
    box.dataset.movieId = movie.movieId;
    box.setAttribute("role", "group");
    box.setAttribute("aria-label", "Rate " + movie.title);
    for (let i = 1; i <= 10; i++) {
      let v = i / 2;
      var b = document.createElement("button");
      b.type = "button";
      b.className = "star " + (i % 2 ? "left" : "right");
      b.dataset.value = String(v);
      b.setAttribute("aria-label", starsText(v));
      var glyph = document.createElement("span");
      glyph.textContent = "\u2605";
      b.appendChild(glyph);
      b.addEventListener("click", function () { rate(movie, v); });
      box.appendChild(b);
    }
    paintStars(box);
    return box;
  }
  function repaintStars() {
    document.querySelectorAll("#explorer .stars").forEach(paintStars);
  }
  function rateFailed(text, state) {
    status("rate-status", text, true);
    $("rate-status").dataset.state = state;
  }
  async function rate(movie, value) {
    var st = $("rate-status");
    if (currentUser === null) {
      rateFailed("Choose the user to rate as first: type a user id on the left (an id nobody " +
        "has used starts a new user) and press Recommend.", "invalid");
      $("user-input").focus();
      return;
    }
    var token = storedToken();
    if (!token) {
      rateFailed("Type the write token above first: rating needs the server's " +
        "CINEMATCH_API_TOKEN. Nothing was rated.", "invalid");
      $("token-input").focus();
      return;
    }
    var user = currentUser;
    st.dataset.state = "loading";
    status("rate-status", "Rating " + movie.title + " " + starsText(value) + " as user " + user + "…");
    try {
      await answer(await fetch("/api/ratings", {
        method: "POST",
        headers: {
          Accept: "application/json",
          "Content-Type": "application/json",
          Authorization: "Bearer " + token,
        },
        body: JSON.stringify({ userId: user, movieId: movie.movieId, rating: value }),
      }));
    } catch (e) {
      var text;
      if (e.status === 401) {
        try { sessionStorage.removeItem(TOKEN_KEY); } catch (_) { /* nothing kept */ }
        showToken();
        text = "The server refused the write token (" + e.message + "). Type it again above; nothing was rated.";
      } else if (e.status === 403) {
        text = "This server does not take ratings: " + e.message;
      } else if (e.status >= 400 && e.status < 500) {
        text = "The rating was refused (" + e.status + "): " + e.message;
      } else if (e.status) {
        text = "The server could not store the rating (" + e.status + "): " + e.message + ". Try again in a moment.";
      } else {
        text = "The rating did not reach the server: " + e.message;
      }
      rateFailed(text, "error");
      return;
    }
    if (user === currentUser) {
      known[movie.movieId] = value;
      repaintStars();
    }
    status("rate-status", "Rated " + movie.title + " " + starsText(value) + " as user " + user +
      "; the list is computed again from their ratings.");
    if (user === currentUser) { await showUser(String(user)); }
    st.dataset.state = "done";
  }

  async function showUser(user) {
    var recs = $("user-recs"), rated = $("user-rated");
    var seq = ++userSeq;
    status("user-status", "Loading…");
    recs.dataset.state = "loading";
    try {
      var id = encodeURIComponent(user);
      var r = await getJSON("/api/users/" + id + "/recommendations?k=10", true);
      var h = await getJSON("/api/users/" + id + "/ratings?limit=1000", true);
      // A later request (another user typed meanwhile) owns the lists.
      if (seq !== userSeq) { return; }
      currentUser = r.userId;
      known = {};
      h.items.forEach(function (it) {
        if (!(it.movieId in known)) { known[it.movieId] = it.rating; }
      });
      showRatingAs();
      repaintStars();
      fill(recs, r.items, function (li, it) {
        var score = it.predictedRating !== undefined
          ? "predicted " + it.predictedRating.toFixed(2)
          : (r.strategy === "popular" ? "mean " : "score ") + it.score.toFixed(2);
        line(li, it.title, score + " · " + it.genres.join(", "));
        li.appendChild(starButtons(it));
        if (it.because && it.because.length) {
          var why = document.createElement("span");
          why.className = "because";
          why.textContent = "because you rated " + it.because.map(function (b) {
            return b.title + " (" + Math.round(b.share * 100) + "%)";
          }).join(", ");
          li.appendChild(why);
        }
      });
      var shown = h.items.slice(0, 15);
      fill(rated, shown, function (li, it) {
        var title = it.title || ("movie " + it.movieId);
        line(li, title, "rated " + it.rating.toFixed(1));
        li.appendChild(starButtons({ movieId: it.movieId, title: title }));
      });
      // Say when the list is a part: "15 of 232".
      $("rated-title").textContent = h.total === 0 ? "Rated: nothing yet"
        : shown.length < h.total ? "Rated: the newest " + shown.length + " of " + h.total
          : "Rated: all " + h.total;
      rated.dataset.shown = String(shown.length);
      rated.dataset.total = String(h.total);
      $("recs-title").textContent = r.strategy === "model" ? "Recommended"
        : r.strategy === "fold-in" ? "Recommended from their latest ratings (fold-in)"
          : "Popular (new user)";
      status("user-status", "User " + r.userId + ": " + (r.strategy === "model"
        ? "personalized by " + r.modelVersion
        : r.strategy === "fold-in"
          ? "personalized by " + r.modelVersion + " from their latest ratings (fold-in)"
          : "not known to the model, so the most popular movies") +
        "; " + h.total + " ratings.");
      recs.dataset.strategy = r.strategy;
      recs.dataset.state = "done";
    } catch (e) {
      if (seq !== userSeq) { return; }
      currentUser = null;
      known = {};
      showRatingAs();
      repaintStars();
      recs.replaceChildren(); rated.replaceChildren();
      $("rated-title").textContent = "Rated";
      $("recs-title").textContent = "Recommended";
      delete recs.dataset.strategy;
      status("user-status", e.status === 401 || e.status === 403
        ? "This server keeps users' ratings and lists private (" + e.message +
          "). Type its read or write token above, then show the user again."
        : e.message, true);
      recs.dataset.state = "error";
    }
  }
  async function showSimilar(movie) {
    var list = $("movie-similar");
    list.dataset.state = "loading";
    var s = await getJSON("/api/movies/" + movie.movieId + "/similar?k=10");
    $("similar-title").textContent = "Similar to " + movie.title;
    fill(list, s.items, function (li, it) {
      line(li, it.title, "similarity " + it.similarity.toFixed(2));
    });
    list.dataset.state = "done";
  }
  async function showMovie(q) {
    var matches = $("movie-matches"), similar = $("movie-similar");
    status("movie-status", "Loading…");
    similar.dataset.state = "loading";
    try {
      var found = await getJSON("/api/movies?limit=5&q=" + encodeURIComponent(q));
      fill(matches, found.movies, function (li, m) {
        var b = document.createElement("button");
        b.className = "link";
        b.type = "button";
        b.textContent = m.title;
        b.addEventListener("click", function () {
          showSimilar(m).catch(function (e) {
            similar.replaceChildren();
            status("movie-status", e.message, true);
            similar.dataset.state = "error";
          });
        });
        li.appendChild(b);
        var meta = document.createElement("span");
        meta.className = "meta";
        meta.textContent = m.ratingCount + " ratings" +
          (m.meanRating === null ? "" : ", mean " + m.meanRating.toFixed(2));
        li.appendChild(meta);
        li.appendChild(starButtons(m));
      });
      if (found.movies.length === 0) {
        similar.replaceChildren();
        $("similar-title").textContent = "Similar";
        status("movie-status", "No movie title matches \u201c" + q + "\u201d.", true);
        similar.dataset.state = "empty";
        return;
      }
      status("movie-status", found.count + " matches; similar movies of the first, click another to switch.");
      await showSimilar(found.movies[0]);
    } catch (e) {
      matches.replaceChildren(); similar.replaceChildren();
      $("similar-title").textContent = "Similar";
      status("movie-status", e.message, true);
      similar.dataset.state = "error";
    }
  }
  function remember(key, value) {
    var p = new URLSearchParams(location.search);
    p.set(key, value);
    history.replaceState(null, "", "?" + p.toString());
  }
  // The browser refuses a bad value (user 0, an empty title) before submit;
  // say why next to the form too, where the results would appear.
  $("user-input").addEventListener("invalid", function () {
    status("user-status", $("user-input").validationMessage || "Enter a user id.", true);
    $("user-recs").dataset.state = "invalid";
  });
  $("movie-input").addEventListener("invalid", function () {
    status("movie-status", $("movie-input").validationMessage || "Enter a title.", true);
    $("movie-similar").dataset.state = "invalid";
  });
  $("user-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var v = $("user-input").value.trim();
    remember("user", v);
    showUser(v);
  });
  $("token-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var input = $("token-input"), v = input.value.trim();
    input.value = "";
    if (!v) {
      status("token-status", "Type the token first (the server's CINEMATCH_API_TOKEN).", true);
      return;
    }
    try {
      sessionStorage.setItem(TOKEN_KEY, v);
    } catch (err) {
      status("token-status", "This browser keeps no session storage here, so the token cannot be kept: " + err.message, true);
      return;
    }
    showToken();
  });
  $("token-forget").addEventListener("click", function () {
    $("token-input").value = "";
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (_) { /* nothing kept */ }
    showToken();
  });
  $("movie-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var v = $("movie-input").value.trim();
    remember("movie", v);
    showMovie(v);
  });
  // --- models: compare, promote, roll back -----------------------------------
  // `#model-status` has `data-state` (`loading`, `done`, `error`,
  // `invalid`) like the lists; `#compare` holds the comparison table.
  function modelStatus(text, state) {
    status("model-status", text, state === "error" || state === "invalid");
    $("model-status").dataset.state = state;
  }
  function num(v) { return v === null || v === undefined ? "\u2013" : Number(v).toFixed(4); }
  async function compare() {
    var picked = Array.prototype.map.call(
      document.querySelectorAll("#model-table input.cmp:checked"), function (b) { return b.value; });
    var out = $("compare");
    if (picked.length < 2) {
      modelStatus("Tick two or more versions in the table first.", "invalid");
      return;
    }
    modelStatus("Loading the versions…", "loading");
    try {
      var body = await getJSON("/api/models", false);
      var byVersion = {};
      body.models.forEach(function (m) { byVersion[m.modelVersion] = m; });
      var models = picked.map(function (v) { return byVersion[v]; }).filter(Boolean);
      var params = {};
      models.forEach(function (m) {
        var p = (m.notes && m.notes.params) || {};
        Object.keys(p).forEach(function (k) { if (k !== "algo") { params[k] = true; } });
      });
      var rows = [
        ["Algorithm", function (m) { return m.algorithm || "?"; }],
        ["Kind", function (m) { return (m.notes && m.notes.kind) || ""; }],
        ["Trained", function (m) { return m.trainingDate.replace("T", " "); }],
        ["Champion", function (m) { return m.isChampion ? "yes" : ""; }],
        ["Ratings", function (m) { return m.dataSize === null ? "" : String(m.dataSize); }],
        ["NDCG@10 (the list a user sees)", function (m) { return num(m.ndcgAt10); }],
        ["Recall@10 (the list a user sees)", function (m) { return num(m.recallAt10); }],
        ["P@10 (the list a user sees)", function (m) { return num(m.cataloguePrecisionAt10); }],
        ["Coverage (the list a user sees)", function (m) { return num(m.coverage); }],
        ["RMSE", function (m) { return num(m.rmse); }],
        ["MAE", function (m) { return num(m.mae); }],
        ["P@10 (rated items \u22653.5)", function (m) { return num(m.precisionAt10); }],
      ];
      Object.keys(params).sort().forEach(function (k) {
        rows.push([k, function (m) {
          var p = (m.notes && m.notes.params) || {};
          var v = p[k];
          if (v === undefined || v === null) { return ""; }
          return typeof v === "number" && !Number.isInteger(v) ? String(Number(v.toPrecision(4))) : String(v);
        }, true]);
      });
      var table = document.createElement("table");
      var head = document.createElement("tr");
      var corner = document.createElement("th");
      corner.textContent = "Metric / hyperparameter";
      head.appendChild(corner);
      models.forEach(function (m) {
        var th = document.createElement("th");
        th.textContent = m.modelVersion;
        th.className = "mono";
        head.appendChild(th);
      });
      var thead = document.createElement("thead");
      thead.appendChild(head);
      table.appendChild(thead);
      var tbody = document.createElement("tbody");
      rows.forEach(function (r) {
        var tr = document.createElement("tr");
        tr.dataset.row = r[0];
        if (r[2]) { tr.className = "param"; }
        var th = document.createElement("th");
        th.textContent = r[0];
        tr.appendChild(th);
        var values = models.map(r[1]);
        var differs = values.some(function (v) { return v !== values[0]; });
        values.forEach(function (v) {
          var td = document.createElement("td");
          td.textContent = v;
          td.className = "num" + (differs ? " differs" : "");
          tr.appendChild(td);
        });
        tbody.appendChild(tr);
      });
      table.appendChild(tbody);
      table.id = "compare-table";
      out.replaceChildren(table);
      out.hidden = false;
      modelStatus("Comparing " + models.length + " versions; cells that differ are shaded.", "done");
    } catch (e) {
      modelStatus("Cannot load the versions: " + e.message, "error");
    }
  }
  // Marks `version` as the champion in the table and the champion card.
  function showChampion(version, message) {
    document.querySelectorAll("#model-table tbody tr").forEach(function (tr) {
      var is = tr.dataset.version === version;
      tr.classList.toggle("is-champion", is);
      var badge = tr.querySelector(".badge:not(.tuned)");
      if (badge && !is) { badge.remove(); }
      if (is && !badge) {
        var b = document.createElement("span");
        b.className = "badge";
        b.textContent = "champion";
        var badges = tr.querySelector(".badges");
        badges.insertBefore(b, badges.firstChild);
      }
      var button = tr.querySelector("button.promote");
      if (button) { button.hidden = is; }
    });
    var card = $("champion-version");
    if (card) { card.textContent = version; }
    modelStatus(message + " Refresh redraws the charts.", "done");
  }
  async function changeChampion(url, doing) {
    var token = storedToken();
    if (!token) {
      modelStatus("Type the write token in the explorer above first: promoting and rolling back need the " +
        "server's CINEMATCH_API_TOKEN. Nothing changed.", "invalid");
      $("token-input").focus();
      return;
    }
    modelStatus(doing + "…", "loading");
    try {
      var body = await answer(await fetch(url, {
        method: "POST",
        headers: { Accept: "application/json", Authorization: "Bearer " + token },
      }));
      showChampion(body.champion, body.message + ".");
    } catch (e) {
      if (e.status === 401) {
        try { sessionStorage.removeItem(TOKEN_KEY); } catch (_) { /* nothing kept */ }
        showToken();
        modelStatus("The server refused the write token (" + e.message + "). Type it again above; nothing changed.", "error");
      } else {
        modelStatus((e.status ? "Refused (" + e.status + "): " : "No answer: ") + e.message, "error");
      }
    }
  }
  if ($("compare-btn")) {
    $("compare-btn").addEventListener("click", function () { compare(); });
    $("rollback-btn").addEventListener("click", function () {
      changeChampion("/api/models/rollback", "Rolling back the champion");
    });
    document.querySelectorAll("#model-table button.promote").forEach(function (b) {
      b.addEventListener("click", function () {
        var v = b.dataset.version;
        changeChampion("/api/models/" + encodeURIComponent(v) + "/promote", "Promoting " + v);
      });
    });
  }
  $("refresh").addEventListener("click", function () { location.reload(); });
  // Picks: a known user, or a fresh id (ids this high are unused in
  // MovieLens releases; the list says "popular" until they rate).
  function pickUser(id) {
    $("user-input").value = String(id);
    remember("user", String(id));
    showUser(String(id));
  }
  $("pick-user-1").addEventListener("click", function () { pickUser(1); });
  $("pick-new-user").addEventListener("click", function () {
    pickUser(900000 + Math.floor(Math.random() * 99999) + 1);
  });

  showToken();
  showRatingAs();
  var params = new URLSearchParams(location.search);
  if (params.get("user")) { $("user-input").value = params.get("user"); showUser(params.get("user")); }
  if (params.get("movie")) { $("movie-input").value = params.get("movie"); showMovie(params.get("movie")); }
})();
