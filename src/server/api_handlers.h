#pragma once
// The endpoint handlers behind api_router (internal to the server module). Each answers on
// the connection or throws ApiError / Error, which the router turns into the error response.
#include <memory>
#include <string_view>

#include "server/api_context.h"
#include "server/http_connection.h"
#include "server/openai_request.h"  // parse_request_body

namespace dsi::server {

// 404 unless `model` is empty or one of the served names.
void check_model_name(const ApiContext& context, const std::string& model);

void handle_completions(ApiContext& context, const std::shared_ptr<HttpConnection>& connection,
                        const HttpRequest& request);
void handle_chat_completions(ApiContext& context, const std::shared_ptr<HttpConnection>& connection,
                             const HttpRequest& request);
void handle_tokenize(ApiContext& context, const std::shared_ptr<HttpConnection>& connection, const HttpRequest& request);
void handle_detokenize(ApiContext& context, const std::shared_ptr<HttpConnection>& connection,
                       const HttpRequest& request);

}  // namespace dsi::server
