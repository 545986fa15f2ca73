-- PATCH a random seeded application, merging one config key.
local rows = tonumber(os.getenv("BENCH_ROWS"))
wrk.method = "PATCH"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Token " .. os.getenv("BENCH_TOKEN")

request = function()
    local id = math.random(1, rows)
    local body = '{"config": {"visible_type": "full_page", "n": ' .. id .. '}}'
    return wrk.format(nil, "/api/v1/applications/" .. id .. "/", nil, body)
end
