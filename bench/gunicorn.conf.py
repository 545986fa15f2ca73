# The benchmark's gunicorn settings are its command-line flags (bench/run.py). This
# empty file is passed with -c so gunicorn does not load the production
# ./gunicorn.conf.py, whose worker recycling would restart workers mid-run.
