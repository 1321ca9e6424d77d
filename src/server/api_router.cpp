#include "server/api_router.h"

#include <chrono>
#include <string_view>
#include <variant>

#include "core/log.h"
#include "server/api_error.h"
#include "server/api_handlers.h"

namespace dsi::server {

namespace {

enum class Route {
  route_health,
  route_metrics,
  route_version,
  route_models,
  route_model,  // /v1/models/{id}
  route_completions,
  route_chat,
  route_tokenize,
  route_detokenize,
  route_unknown
};

struct RouteInfo {
  Route route;
  http::verb method;
  const char* name;  // the metrics label
};

RouteInfo find_route(std::string_view path) {
  using V = http::verb;
  if (path == "/health") return {Route::route_health, V::get, "/health"};
  if (path == "/metrics") return {Route::route_metrics, V::get, "/metrics"};
  if (path == "/version") return {Route::route_version, V::get, "/version"};
  if (path == "/v1/models") return {Route::route_models, V::get, "/v1/models"};
  if (path.substr(0, 11) == "/v1/models/" && path.size() > 11) return {Route::route_model, V::get, "/v1/models/{id}"};
  if (path == "/v1/completions") return {Route::route_completions, V::post, "/v1/completions"};
  if (path == "/v1/chat/completions") return {Route::route_chat, V::post, "/v1/chat/completions"};
  if (path == "/tokenize") return {Route::route_tokenize, V::post, "/tokenize"};
  if (path == "/detokenize") return {Route::route_detokenize, V::post, "/detokenize"};
  return {Route::route_unknown, V::unknown, "other"};
}

// Compares in time independent of where the strings differ (the length is no secret).
bool same_secret(std::string_view given, std::string_view key) {
  if (given.size() != key.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < key.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ key[i]);
  return diff == 0;
}

// The credentials of "Authorization: Bearer <token>"; empty for another scheme. RFC 7235:
// the scheme name is case-insensitive ("bearer" too) and one or more spaces follow it.
std::string_view bearer_token(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size() || authorization[kScheme.size()] != ' ' ||
      !beast::iequals(beast::string_view(authorization.data(), kScheme.size()), kScheme.data()))
    return {};
  size_t start = authorization.find_first_not_of(' ', kScheme.size());
  return start == std::string_view::npos ? std::string_view() : authorization.substr(start);
}

void check_api_key(const ApiContext& context, const HttpRequest& request) {
  if (context.options.api_key.empty()) return;
  std::string_view auth(request[http::field::authorization].data(), request[http::field::authorization].size());
  if (!same_secret(bearer_token(auth), context.options.api_key))
    throw ApiError(401, auth.empty() ? "missing API key: send the header 'Authorization: Bearer <key>'"
                                     : "invalid API key");
}

// The error response of the exception being handled (call inside a catch).
struct Answer {
  int status;
  Json body;
};

Answer current_error_answer(std::string_view target) {
  try {
    throw;
  } catch (const ApiError& e) {
    return {e.status(), error_json(e)};
  } catch (const Error& e) {
    return {400, error_json(400, e.what())};
  } catch (const std::exception& e) {
    spdlog::error("internal error on {}: {}", target, e.what());
    return {500, error_json(500, std::string("internal error: ") + e.what())};
  } catch (...) {
    spdlog::error("internal error on {}: an unknown exception", target);
    return {500, error_json(500, "internal error")};
  }
}

// A rank of the group failed: nothing can run any more until the group is restarted.
void check_group_healthy(const ApiContext& context) {
  if (!context.group_health) return;
  if (auto f = context.group_health->failure())
    throw ApiError(503, fmt::format("the server cannot generate: a rank of its parallel group failed ({}); it exits "
                                    "to be restarted",
                                    f->error));
}

void check_not_shutting_down(const HttpConnection& connection) {
  if (connection.shutting_down()) throw ApiError(503, "the server is shutting down and accepts no new requests");
}

// The costly part of a request (its JSON, chat template, tokenization) runs on the
// preprocessing pool; the connection's strand then starts the generation or sends the answer.
// While the job runs the connection keeps its read pending (a vanished client is noticed)
// and a server cancel answers 503 at once; the job's result is then dropped.
using Prepared = std::variant<GenerationInput, Json>;
using PrepareFn = Prepared (*)(const ApiContext&, const std::string&);

void offload(ApiContext& context, const std::shared_ptr<HttpConnection>& connection, HttpRequest& request,
             PrepareFn prepare) {
  const auto arrival = std::chrono::steady_clock::now();
  std::string target(request.target().data(), request.target().size());
  // A tracked executor counts as work: ioc.run() does not return while a job is out.
  net::any_io_executor strand = net::prefer(connection->executor(), net::execution::outstanding_work.tracked);
  auto job = [&context, connection, strand, target, body = std::move(request.body()), prepare, arrival]() mutable {
    std::variant<Prepared, Answer> result = Answer{500, nullptr};
    try {
      result = prepare(context, body);
    } catch (...) {
      result = current_error_answer(target);
    }
    body = std::string();
    net::post(strand, [&context, connection, target, arrival, result = std::move(result)]() mutable {
      if (connection->peer_gone() || connection->response_started()) return;  // gone, or cancelled meanwhile
      connection->on_cancel(nullptr);
      if (auto* answer = std::get_if<Answer>(&result)) return connection->send_json(answer->status, answer->body);
      Prepared& prepared = std::get<Prepared>(result);
      if (auto* json = std::get_if<Json>(&prepared)) return connection->send_json(200, *json);
      GenerationInput& input = std::get<GenerationInput>(prepared);
      input.arrival = arrival;
      try {
        start_generation(context, connection, std::move(input));
      } catch (...) {
        Answer answer = current_error_answer(target);
        connection->send_json(answer.status, answer.body);
      }
    });
  };
  connection->on_cancel([c = connection.get()] {
    c->send_json(503, error_json(503, "the server is shutting down: the request was cancelled"));
  });
  if (!context.preprocess.try_post(std::move(job))) {
    connection->on_cancel(nullptr);
    throw ApiError(503, fmt::format("overloaded: {} requests are already waiting to be tokenized",
                                    context.preprocess.max_queued()));
  }
}

Json model_card(const ApiContext& context, const std::string& name) {
  return Json{{"id", name},
              {"object", "model"},
              {"created", context.options.created},
              {"owned_by", "dsinfer"},
              {"root", context.model_name()},
              {"parent", nullptr},
              {"max_model_len", context.engine.max_model_len()},
              {"permission", Json::array()}};
}

void dispatch(ApiContext& context, const std::shared_ptr<HttpConnection>& connection, HttpRequest& request) {
  std::string_view target(request.target().data(), request.target().size());
  std::string_view path = target.substr(0, target.find('?'));
  RouteInfo info = find_route(path);
  if (info.route == Route::route_unknown)
    throw ApiError(404, fmt::format("no route for {} {}",
                                    clip_text(std::string_view(request.method_string().data(),
                                                               request.method_string().size())),
                                    clip_text(path)));
  connection->set_route(info.name);
  // HEAD is GET without the body (RFC 9110 section 9.3.2): the connection leaves the body out.
  const bool method_ok = request.method() == info.method ||
                         (info.method == http::verb::get && request.method() == http::verb::head);
  if (!method_ok) {
    connection->add_header("Allow", info.method == http::verb::get ? "GET, HEAD" : "POST");
    throw ApiError(405, fmt::format("{} takes {}, not {}", info.name,
                                    info.method == http::verb::get ? "GET or HEAD" : "POST",
                                    clip_text(request.method_string().to_string())));
  }
  if (path.substr(0, 4) == "/v1/") check_api_key(context, request);

  switch (info.route) {
    case Route::route_health:
      if (context.group_health)
        if (auto f = context.group_health->failure()) return connection->send_json(503, f->to_json());
      if (connection->shutting_down()) throw ApiError(503, "the server is shutting down");
      return connection->send(200, "", "text/plain; charset=utf-8");
    case Route::route_metrics:
      return connection->send(200, context.metrics.render(context.engine.stats()),
                              "text/plain; version=0.0.4; charset=utf-8");
    case Route::route_version:
      return connection->send_json(200, Json{{"version", "0.1.0"}});
    case Route::route_models: {
      Json data = Json::array();
      for (const auto& name : context.options.served_model_names) data.push_back(model_card(context, name));
      return connection->send_json(200, Json{{"object", "list"}, {"data", std::move(data)}});
    }
    case Route::route_model: {
      std::string id(path.substr(11));
      check_model_name(context, id);
      return connection->send_json(200, model_card(context, id));
    }
    case Route::route_completions:
      check_group_healthy(context);
      check_not_shutting_down(*connection);
      return offload(context, connection, request, [](const ApiContext& c, const std::string& body) -> Prepared {
        return prepare_completions(c, body);
      });
    case Route::route_chat:
      check_group_healthy(context);
      check_not_shutting_down(*connection);
      return offload(context, connection, request, [](const ApiContext& c, const std::string& body) -> Prepared {
        return prepare_chat_completions(c, body);
      });
    case Route::route_tokenize:
      return offload(context, connection, request, [](const ApiContext& c, const std::string& body) -> Prepared {
        return tokenize_response(c, body);
      });
    case Route::route_detokenize:
      return offload(context, connection, request, [](const ApiContext& c, const std::string& body) -> Prepared {
        return detokenize_response(c, body);
      });
    case Route::route_unknown: break;
  }
}

}  // namespace

void handle_api_request(ApiContext& context, const std::shared_ptr<HttpConnection>& connection, HttpRequest&& request) {
  try {
    dispatch(context, connection, request);
  } catch (...) {
    Answer answer = current_error_answer(std::string_view(request.target().data(), request.target().size()));
    connection->send_json(answer.status, answer.body);
  }
}

}  // namespace dsi::server
