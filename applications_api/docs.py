"""Swagger UI's assets, served by this app so the docs work without internet."""

from flask import Blueprint, send_from_directory
from swagger_ui_bundle import swagger_ui_path

SWAGGER_UI_ASSETS_URL = "/api/v1/docs/assets/"

assets = Blueprint("swagger_ui_assets", __name__)


@assets.route(f"{SWAGGER_UI_ASSETS_URL}<path:filename>")
def swagger_ui_asset(filename):
    return send_from_directory(swagger_ui_path, filename, max_age=86400)
