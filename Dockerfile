# One image for every Tideline service: `tideline run <service>` picks which.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY libs libs
COPY services services
COPY ops ops
COPY schemas schemas
COPY examples examples
RUN pip install --no-cache-dir .
ENTRYPOINT ["tideline"]
