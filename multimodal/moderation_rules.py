"""Lexical rules of the offline moderation classifier (multimodal/moderation.py), English and Chinese.

- `INJECTION`: phrasings of prompt injection, jailbreaks and system-prompt extraction; each
  pattern needs an instruction verb and its target ("ignore" + "previous instructions"), so
  "ignore the noise in this data" or "a system prompt for my bot" do not match. A match flags.
- `TERMS`: words of each harmful category (explosives, drug names, malware kinds, ...). A term
  only shifts the embedding score by `safety.lexical_boost`; it never flags on its own.
- `DEFENSIVE`: cues of a protective or informational question ("how do I protect", "report",
  "防范", "举报"), which shift the score the other way.
"""

from __future__ import annotations

import re


def _rx(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE | re.DOTALL)


INJECTION: list[re.Pattern[str]] = [
    _rx(r"\b(ignore|disregard|forget|override|bypass)\b.{0,40}\b(previous|prior|above|earlier|preceding|all|any|your|the system)\b"
        r".{0,30}\b(instructions?|guidelines|prompts?|directions|directives|programming|guardrails)\b"),
    _rx(r"\b(ignore|disregard|forget|override|bypass|stop following)\b.{0,20}\b(your|all|the)\b.{0,20}\b(rules|restrictions|safety|filters?|policies)\b"),
    _rx(r"\b(previous|prior|above|earlier|all)\b.{0,20}\b(instructions|directives|rules)\b.{0,20}\b(are|were)\b.{0,10}\b(void|cancelled|canceled|invalid|a test|no longer)\b"),
    _rx(r"\b(reveal|print|show|repeat|output|display|leak|dump|recite|quote|give me|tell me|what (is|are|were))\b.{0,40}"
        r"\b(your|the)\s+(system|hidden|initial|original|secret|internal)\s+(prompt|instructions?|message|rules)"),
    _rx(r"\b(repeat|print|output|show|dump)\b.{0,30}\b(everything|all|the text|the words)\b.{0,40}\b(above|before (this|my)|context( window)?|so far)\b"),
    _rx(r"\b(you are|you're|act as|pretend (to be|you are)|from now on|imagine you)\b.{0,80}"
        r"\b(no|without|free of|freed from|unrestricted|uncensored|unfiltered|broken free of|never refuse)\b.{0,30}"
        r"\b(restrictions?|rules|limits|limitations|filters?|censorship|ethics|morals|guidelines|policies|refuse)\b"),
    _rx(r"\b(do anything now|dan mode|jailbreak mode|jailbroken|jailbreak enabled|enable jailbreak|god mode|unrestricted mode)\b"),
    _rx(r"(忽略|无视|忘记|忘掉|不要理会|不要管|别管|跳过|绕过|覆盖).{0,15}(之前|以上|前面|上面|先前|所有|全部|你的|你收到|原来的|原有的|系统).{0,12}"
        r"(指令|指示|指导|提示|规则|设定|要求|限制|约束|命令)"),
    _rx(r"(别再|不要再|停止)遵守.{0,10}(规则|指令|设定|限制)"),
    _rx(r"(之前|以上|前面|上面|所有).{0,8}(指令|指示|规则).{0,8}(作废|无效|取消|只是测试)"),
    _rx(r"(输出|告诉我|显示|打印|复述|泄露|给我看|透露|重复|说出|列出|导出|引用).{0,15}(你的|你收到的)?(系统提示|系统指令|系统消息|初始指令|隐藏指令|原始指令|内部指令|初始提示|隐藏规则)"),
    _rx(r"(你的|给你的|你收到的)(系统提示词?|系统指令|系统消息|提示词|初始设定|隐藏指令|隐藏规则)(是什么|有哪些|内容|原文|写了什么)"),
    _rx(r"(开发者|开发人员)给你的(指令|指示|提示)"),
    _rx(r"(重复|复述|输出).{0,20}(上下文|上面|之前).{0,10}(所有|全部)?内容"),
    _rx(r"(越狱模式|开启越狱|已越狱|DAN模式|上帝模式|无限制模式)"),
    _rx(r"(你|扮演|假装|想象).{0,20}(没有|不受|不用遵守|解除了?|摆脱了?).{0,6}(任何|所有)?(限制|约束|道德|审查|过滤|规则|规矩|准则)"),
]

TERMS: dict[str, re.Pattern[str]] = {
    "violence": _rx(r"\b(kill|murder|stab|strangle|suffocate|smother|poison|torture|behead|shoot up|beat (him|her|them) up|casualties|massacre|break (someone'?s|his|her) neck|run (people|them) over)\b",
                    r"杀死|杀人|捅|闷死|勒死|下毒|折磨|打残|撞死|扭断|砍死|枪击|屠杀"),
    "weapons": _rx(r"\b(bombs?|explosives?|detonat\w*|ied|grenades?|tatp|thermite|napalm|molotov|nerve agent|sarin|ricin|anthrax|mustard gas|chlorine gas|toxic gas|silencer|suppressor|ghost gun|untraceable gun|machine gun|fully automatic|bio-?weapons?)\b",
                   r"炸弹|炸药|爆炸装置|引爆|手榴弹|铝热剂|燃烧瓶|毒气|沙林|蓖麻毒素|炭疽|芥子气|氯气|消音器|枪支|全自动|生物武器"),
    "self_harm": _rx(r"\b(kill myself|suicide|end my life|end it all|hang myself|overdose|cut myself|cut my wrists|self-harm|drown myself|don'?t want to live|throw up after)\b",
                     r"自杀|结束自己的生命|上吊|割腕|自残|跳楼|烧炭|不想活|遗书|催吐"),
    "sexual_minors": _rx(r"\b(child|children|kids?|minors?|underage|\d{1,2}[- ]year[- ]olds?|teens?|students?)\b.{0,60}\b(sex\w*|erotic|nudes?|naked|porn\w*|explicit)\b",
                         r"\b(sex\w*|erotic|nudes?|naked|porn\w*|explicit)\b.{0,60}\b(child|children|kids?|minors?|underage|\d{1,2}[- ]year[- ]olds?)\b",
                         r"(儿童|未成年|小学生|初中生|孩子|\d+岁).{0,30}(色情|裸|性)", r"(色情|裸|性).{0,30}(儿童|未成年|小学生|初中生|孩子|\d+岁)"),
    "hate": _rx(r"\b(inferior|subhuman|vermin|exterminat\w*|genocide|slurs?|wiped? out|sterili[sz]ed?|ethnic cleansing)\b",
                r"低劣|害虫|屠杀|灭绝|清除|脏话|绝育|劣等"),
    "harassment": _rx(r"\b(threaten\w*|scare (him|her|them)|stalk\w*|dox\w*|blackmail|kill (herself|himself|yourself|themselves)|where .{0,30} lives|home address|fake reviews|never feels? safe)\b",
                      r"威胁|恐吓|跟踪|人肉|勒索|去死|住址|吓唬|诬陷|没有安全感"),
    "drugs": _rx(r"\b(meth|methamphetamine|fentanyl|cocaine|crack|heroin|mdma|ecstasy|lsd|dmt|ketamine|xanax|safrole|pseudoephedrine)\b",
                 r"冰毒|芬太尼|可卡因|海洛因|摇头丸|大麻|K粉|毒品|制毒|黄樟素|伪麻黄碱|阿普唑仑"),
    "malware": _rx(r"\b(ransomware|keylogger|trojan|botnet|worm|virus|malware|exploit|ddos|spyware|steals?|hack into|take over .{0,20}account|without (her|his|their) password)\b",
                   r"勒索病毒|木马|僵尸网络|蠕虫|病毒|盗取|入侵|窃取|盗号|不知道密码|流量攻击"),
    "fraud": _rx(r"\b(scam\w*|counterfeit|forge|forged|fake (id|documents?|income|diploma|charity)|launder\w*|verification codes?|pretending to be (the|a) bank|romance scam)\b",
                 r"诈骗|假钞|伪造|洗钱|杀猪盘|冒充|验证码|刷单|骗.{0,6}(钱|转账|汇款)"),
}

DEFENSIVE = _rx(
    r"\b(protect|prevent|defend|defen[cs]e|avoid|report|warn|detect|recogni[sz]e|warning signs|signs that|safely|for safety|history of|help (a|my) friend|risks of|why is .{0,30} dangerous|how do .{0,30} (investigate|work))\b",
    r"防止|防范|防御|预防|举报|提醒|迹象|安全地|为了安全|历史|帮助他|帮他|危害|识别|怎么办|援助|热线",
)
