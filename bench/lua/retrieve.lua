-- GET a random seeded application.
local rows = tonumber(os.getenv("BENCH_ROWS"))
wrk.headers["Authorization"] = "Token " .. os.getenv("BENCH_TOKEN")

request = function()
    return wrk.format("GET", "/api/v1/applications/" .. math.random(1, rows) .. "/")
end
