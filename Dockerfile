# One image for every chatbridge process: gunicorn (HTTP), Daphne (websockets), the task worker,
# the periodic job.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
# DEBUG only for this build step: collectstatic needs no secrets.
RUN DEBUG=1 python manage.py collectstatic --noinput \
    && useradd --system --no-create-home chatbridge \
    && install -d -o chatbridge /var/lib/chatbridge-metrics /var/lib/chatbridge-media
USER chatbridge

EXPOSE 8000 8001
CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py", "chatbridge.wsgi:application"]
