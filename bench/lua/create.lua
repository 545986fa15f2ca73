-- POST a new application on every request.
wrk.method = "POST"
wrk.path = "/api/v1/applications/"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Token " .. os.getenv("BENCH_TOKEN")
wrk.body = '{"name": "Bench app", "application_type": "extension", ' ..
           '"config": {"web_url": "https://bench.example.com/"}}'
