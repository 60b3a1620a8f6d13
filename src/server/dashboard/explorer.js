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
  async function getJSON(url) {
    var r = await fetch(url, { headers: { Accept: "application/json" } });
    var body = await r.json();
    if (!r.ok) { throw new Error(body.error || r.statusText); }
    return body;
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
  async function showUser(user) {
    var recs = $("user-recs"), rated = $("user-rated");
    status("user-status", "Loading…");
    recs.dataset.state = "loading";
    try {
      var id = encodeURIComponent(user);
      var r = await getJSON("/api/users/" + id + "/recommendations?k=10");
      var h = await getJSON("/api/users/" + id + "/ratings?limit=15");
      fill(recs, r.items, function (li, it) {
        var score = it.predictedRating !== undefined
          ? "predicted " + it.predictedRating.toFixed(2)
          : (r.strategy === "popular" ? "mean " : "score ") + it.score.toFixed(2);
        line(li, it.title, score + " · " + it.genres.join(", "));
        if (it.because && it.because.length) {
          var why = document.createElement("span");
          why.className = "because";
          why.textContent = "because you rated " + it.because.map(function (b) {
            return b.title + " (" + Math.round(b.share * 100) + "%)";
          }).join(", ");
          li.appendChild(why);
        }
      });
      fill(rated, h.items, function (li, it) {
        line(li, it.title || ("movie " + it.movieId), "rated " + it.rating.toFixed(1));
      });
      var personal = r.strategy !== "popular";
      $("recs-title").textContent = personal ? "Recommended" : "Popular (new user)";
      status("user-status", "User " + r.userId + ": " + (r.strategy === "model"
        ? "personalized by " + r.modelVersion
        : r.strategy === "fold-in"
          ? "personalized by " + r.modelVersion + " from their latest ratings (fold-in)"
          : "not known to the model, so the most popular movies") +
        "; " + h.total + " ratings.");
      recs.dataset.strategy = r.strategy;
      recs.dataset.state = "done";
    } catch (e) {
      recs.replaceChildren(); rated.replaceChildren();
      $("recs-title").textContent = "Recommended";
      delete recs.dataset.strategy;
      status("user-status", e.message, true);
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
  $("movie-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var v = $("movie-input").value.trim();
    remember("movie", v);
    showMovie(v);
  });
  var params = new URLSearchParams(location.search);
  if (params.get("user")) { $("user-input").value = params.get("user"); showUser(params.get("user")); }
  if (params.get("movie")) { $("movie-input").value = params.get("movie"); showMovie(params.get("movie")); }
})();
