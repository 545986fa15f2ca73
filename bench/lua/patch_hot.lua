-- PATCH one application from every connection, each adding its own config key: the
-- writers of one row queue on its lock.
wrk.method = "PATCH"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Token " .. os.getenv("BENCH_TOKEN")

local counter = 0
request = function()
    counter = counter + 1
    local body = '{"config": {"k' .. (counter % 64) .. '": ' .. counter .. '}}'
    return wrk.format(nil, "/api/v1/applications/1/", nil, body)
end
