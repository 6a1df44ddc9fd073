"""Administrator forms."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, SelectField, StringField
from wtforms.validators import DataRequired, Email, Length

from portal.models import Role


class UserForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Email(), Length(max=254)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    role = SelectField(_l("Role"), validators=[DataRequired()])

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.role.choices = [(Role.HOST.value, str(_l("Host (clinician, lawyer, judge, clerk)"))),
                             (Role.ADMIN.value, str(_l("Administrator")))]


class TokenForm(FlaskForm):
    user_id = SelectField(_l("Host"), coerce=int, validators=[DataRequired()])
    name = StringField(_l("What will use it"), validators=[DataRequired(), Length(max=120)])
